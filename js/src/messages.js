// @ts-check
// Generated from qvac_nb/widgets/messages.json by tools/gen_js_messages.py: do not edit, run it again.
// The `type` of every custom message between a widget's front-end and the kernel. The front-end spells
// message types only through these constants (tests/test_messages.py checks it); the kernel dispatches
// on the same names (each widget's handler table, qvac_nb/widgets/messages.py).

/**
 * "image"
 * - ImageStore, front-end -> kernel: {id}: the full-size file (PNG, video) of a listed image or video, wanted for a view or download
 * - ImageStore, kernel -> front-end: {id, purpose, missing?}: the reply to an image request, the file as its one buffer (none if missing)
 */
export const IMAGE = "image";

/**
 * "download_zip"
 * - ImageWidget, front-end -> kernel: {ids}: Download all: the shown (filtered) images as one zip file
 */
export const DOWNLOAD_ZIP = "download_zip";

/**
 * "poll"
 * - ImageWidget, front-end -> kernel: {seen}: no status heard for a while during a job: send the live state again (Colab)
 */
export const POLL = "poll";

/**
 * "zip"
 * - ImageWidget, kernel -> front-end: {name, count}: the Download all zip file as its one buffer, saved by the browser
 */
export const ZIP = "zip";

/**
 * "slot_add"
 * - FeatureInputs, front-end -> kernel: {slot, name, size}: add the uploaded image (its bytes as the one buffer) to an image slot
 */
export const SLOT_ADD = "slot_add";

/**
 * "slot_remove"
 * - FeatureInputs, front-end -> kernel: {slot, index}: remove one image from an image slot
 */
export const SLOT_REMOVE = "slot_remove";

/**
 * "slot_clear"
 * - FeatureInputs, front-end -> kernel: {slot}: remove every image of an image slot
 */
export const SLOT_CLEAR = "slot_clear";

/**
 * "mask"
 * - FeatureInputs, front-end -> kernel: {width, height}: the painted inpainting mask, one byte a pixel (255 = repaint) as the one buffer
 */
export const MASK = "mask";

/**
 * "mask_clear"
 * - FeatureInputs, front-end -> kernel: {}: forget the painted mask
 */
export const MASK_CLEAR = "mask_clear";

/**
 * "lora_refresh"
 * - FeatureInputs, front-end -> kernel: {}: look for LoRA files again (the picker was opened, or Look again)
 */
export const LORA_REFRESH = "lora_refresh";

/**
 * "grid"
 * - StudioGrid, front-end -> kernel: {x, y, params}: make a grid, x and y as [parameter, values] (y may be null), with the form's params
 */
export const GRID = "grid";

/**
 * "grid_axes"
 * - StudioGrid, kernel -> front-end: {x, y}: a grid card's All: put these axes ([parameter, "v1, v2"], y may be null) into the Grid section
 */
export const GRID_AXES = "grid_axes";

/**
 * "generate"
 * - Studio, front-end -> kernel: {params}: generate (an image, or a video with a video model) with the form's params
 */
export const GENERATE = "generate";

/**
 * "cancel"
 * - Studio, front-end -> kernel: {}: stop the running job, the grid under way or the model being loaded
 * - JobView, front-end -> kernel: {}: cancel the job
 */
export const CANCEL = "cancel";

/**
 * "load_model"
 * - Studio, front-end -> kernel: {source, upscaler, prediction, <companion field>...}: load a model from the model bar
 */
export const LOAD_MODEL = "load_model";

/**
 * "select_model"
 * - Studio, front-end -> kernel: {model_id}: use an already loaded model
 */
export const SELECT_MODEL = "select_model";

/**
 * "source_info"
 * - Studio, front-end -> kernel: {source}: what the model to load needs (its family, its companions), into source_info
 */
export const SOURCE_INFO = "source_info";

/**
 * "init_image"
 * - Studio, front-end -> kernel: {name, size}: the uploaded init image, its bytes as the one buffer
 */
export const INIT_IMAGE = "init_image";

/**
 * "clear_init"
 * - Studio, front-end -> kernel: {}: forget the init image
 */
export const CLEAR_INIT = "clear_init";

/**
 * "reuse_seed"
 * - Studio, front-end -> kernel: {id}: put a gallery image's seed into the form
 */
export const REUSE_SEED = "reuse_seed";

/**
 * "reuse_all"
 * - Studio, front-end -> kernel: {id}: put a gallery image's parameters (a grid sheet's, and its axes) into the form
 */
export const REUSE_ALL = "reuse_all";

/**
 * "use_as_init"
 * - Studio, front-end -> kernel: {id}: make a gallery image the init image
 */
export const USE_AS_INIT = "use_as_init";

/**
 * "upscale"
 * - Studio, front-end -> kernel: {id}: upscale a gallery image with the model's upscaler
 */
export const UPSCALE = "upscale";

/**
 * "clear_error"
 * - Studio, front-end -> kernel: {}: dismiss the error
 */
export const CLEAR_ERROR = "clear_error";

/**
 * "preview"
 * - Studio, kernel -> front-end: {step, total, image_index}: a latent preview while sampling, its image as the one buffer
 */
export const PREVIEW = "preview";

// The types each group's front-end sends, and those its kernel side sends (its includes' too).
/** @typedef {typeof IMAGE} ImageStoreFrontendSends ImageStore: front-end -> kernel */
/** @typedef {typeof IMAGE} ImageStoreKernelSends ImageStore: kernel -> front-end */
/** @typedef {typeof DOWNLOAD_ZIP | typeof POLL} ImageWidgetFrontendSends ImageWidget: front-end -> kernel */
/** @typedef {typeof ZIP} ImageWidgetKernelSends ImageWidget: kernel -> front-end */
/** @typedef {typeof LORA_REFRESH | typeof MASK | typeof MASK_CLEAR | typeof SLOT_ADD | typeof SLOT_CLEAR | typeof SLOT_REMOVE} FeatureInputsFrontendSends FeatureInputs: front-end -> kernel */
/** @typedef {never} FeatureInputsKernelSends FeatureInputs: kernel -> front-end */
/** @typedef {typeof GRID} StudioGridFrontendSends StudioGrid: front-end -> kernel */
/** @typedef {typeof GRID_AXES} StudioGridKernelSends StudioGrid: kernel -> front-end */
/** @typedef {typeof CANCEL | typeof CLEAR_ERROR | typeof CLEAR_INIT | typeof DOWNLOAD_ZIP | typeof GENERATE | typeof GRID | typeof IMAGE | typeof INIT_IMAGE | typeof LOAD_MODEL | typeof LORA_REFRESH | typeof MASK | typeof MASK_CLEAR | typeof POLL | typeof REUSE_ALL | typeof REUSE_SEED | typeof SELECT_MODEL | typeof SLOT_ADD | typeof SLOT_CLEAR | typeof SLOT_REMOVE | typeof SOURCE_INFO | typeof UPSCALE | typeof USE_AS_INIT} StudioFrontendSends Studio: front-end -> kernel */
/** @typedef {typeof GRID_AXES | typeof IMAGE | typeof PREVIEW | typeof ZIP} StudioKernelSends Studio: kernel -> front-end */
/** @typedef {typeof CANCEL | typeof DOWNLOAD_ZIP | typeof IMAGE | typeof POLL} JobViewFrontendSends JobView: front-end -> kernel */
/** @typedef {typeof IMAGE | typeof ZIP} JobViewKernelSends JobView: kernel -> front-end */
/** @typedef {typeof DOWNLOAD_ZIP | typeof IMAGE | typeof POLL} GalleryFrontendSends Gallery: front-end -> kernel */
/** @typedef {typeof IMAGE | typeof ZIP} GalleryKernelSends Gallery: kernel -> front-end */
