// @ts-check
// Types only (JSDoc typedefs, no code): the synced traits of each widget (the traitlets tagged sync=True in
// qvac_nb/widgets/*.py), the shapes they hold, and the model object anywidget hands to render(), typed by
// those traits and by the messages the widget's front-end sends (js/src/messages.js, from messages.json).
// Dict traits start as {}: their keys are optional here. Use: `@param {import("./types.js").StudioModel} model`.

/** @typedef {import("./messages.js").StudioFrontendSends} StudioFrontendSends */
/** @typedef {import("./messages.js").JobViewFrontendSends} JobViewFrontendSends */
/** @typedef {import("./messages.js").GalleryFrontendSends} GalleryFrontendSends */

/** Bytes as the widget protocol delivers them (a DataView in the browser), or a Blob made of them. */
/** @typedef {ArrayBuffer | ArrayBufferView<ArrayBuffer> | Blob} Bytes */

/**
 * A custom message to the kernel: its `type` (one of `S`, the constants of messages.js) and its fields.
 * @template {string} S
 * @typedef {{type: S, [field: string]: unknown}} OutMessage
 */

/**
 * A custom message from the kernel (a "msg:custom" event): its type (messages.js) and fields.
 * @typedef {{type?: string, [field: string]: any}} InMessage
 */

/**
 * What a model fires: "change:<trait>" for a synced trait `T` has, "msg:custom" for a message.
 * @template {object} T
 * @typedef {`change:${keyof T & string}` | "msg:custom"} ModelEvent
 */

/**
 * anywidget's model of a widget whose synced traits are `T` and whose front-end sends the message types `S`.
 * @template {object} T
 * @template {string} S
 * @typedef {object} WidgetModel
 * @property {<K extends keyof T & string>(key: K) => T[K]} get
 * @property {<K extends keyof T & string>(key: K, value: T[K]) => void} set
 * @property {() => void} save_changes
 * @property {(content: OutMessage<S>, callbacks?: unknown, buffers?: (ArrayBuffer | ArrayBufferView)[]) => unknown} send
 * @property {(event: ModelEvent<T>, callback: (...args: any[]) => void) => void} on
 * @property {(event: ModelEvent<T>, callback: (...args: any[]) => void) => void} off
 * @property {{kernel?: {statusChanged?: {connect?: Function, disconnect?: Function}}}} [widget_manager] ipywidgets' manager (JupyterLab)
 */

// ---------------------------------------------------------------- what the traits hold

/**
 * A parameter of the schema (qvac_nb.schema.param_json); the Grid section's prompt S/R is one too.
 * @typedef {object} SchemaParam
 * @property {string} name
 * @property {string} type "int" | "float" | "str" | "bool" | "choice" | "image" | "text" ...
 * @property {string} [label]
 * @property {string} [doc]
 * @property {any} [default]
 * @property {number | null} [min]
 * @property {number | null} [max]
 * @property {number | null} [step]
 * @property {(string | number)[] | null} [choices]
 * @property {boolean} [nullable]
 * @property {string} [control] "textarea" | "slider" | "select" | "checkbox" | "seed" | "text" | "number" | "hidden" | "image"
 * @property {string} [group] "prompt" | "basic" | "advanced"
 * @property {string[] | null} [families] the families it applies to (null: all)
 * @property {boolean} [replayable] kept in an image's record and put back by "All"
 * @property {number} [grid_axis] the Grid offers it as an axis, in this place (1 first); 0 or absent: not offered
 */

/**
 * A family's row (qvac_nb.families.Family.as_json).
 * @typedef {object} FamilyInfo
 * @property {string} [label]
 * @property {boolean} [uses_guidance]
 * @property {boolean} [dit]
 * @property {Record<string, any>} [defaults]
 * @property {number} [size_multiple]
 * @property {string | null} [img2img]
 * @property {boolean} [inpaints]
 * @property {string[]} [hidden]
 * @property {string[]} [text_encoders]
 * @property {string[]} [required_companions]
 * @property {string} [variant]
 * @property {string} [makes] "image" | "video"
 * @property {Record<string, object>} [variants]
 */

/**
 * The `schema` trait (qvac_nb/widgets/form_schema.py).
 * @typedef {object} Schema
 * @property {SchemaParam[]} [params]
 * @property {Record<string, FamilyInfo>} [families]
 */

/**
 * The `status` trait (qvac_nb/widgets/progress.py idle_status, ProgressTracker; the Studio's load and grid).
 * @typedef {object} Status
 * @property {string} [phase] "idle" | "queued" | "loading" | "downloading" | "sampling" | "decoding" | "upscaling" | "done" | "cancelled" | "error"
 * @property {string} [kind] "diffusion" | "video" | "upscale" | "grid" | "load"
 * @property {number} [step]
 * @property {number} [total]
 * @property {number | null} [its]
 * @property {number | null} [eta]
 * @property {boolean} [eta_decode] whether the ETA counts decoding in
 * @property {number | null} [decode_elapsed]
 * @property {number} [elapsed]
 * @property {number} [percent]
 * @property {number} [image_index]
 * @property {number} [image_step]
 * @property {number} [image_total]
 * @property {number} [batch]
 * @property {string} [message]
 * @property {number | null} [seed]
 * @property {number} [ahead] jobs before this one (queued)
 * @property {number} [grid_cell]
 * @property {number} [grid_cells]
 * @property {string} [field] a failed load: the model bar's companion field it is about
 */

/**
 * A grid sheet's axes: [parameter, values] each (y may be null).
 * @typedef {{x?: [string, any[]] | null, y?: [string, any[]] | null}} GridAxes
 */

/**
 * An image (or video) listed by a widget (qvac_nb/widgets/store.py ImageStore.add, with its extras).
 * @typedef {object} GalleryEntry
 * @property {string} id
 * @property {Bytes} [thumb] a JPEG thumbnail
 * @property {number} width
 * @property {number} height
 * @property {number | null} [seed]
 * @property {Record<string, any>} [params] its record's replayable parameters
 * @property {number} [bytes]
 * @property {boolean} [img2img]
 * @property {string} [kind] "image" | "diffusion" | "video" | "upscale" | "grid"
 * @property {string} [family]
 * @property {string} [model]
 * @property {string} [created]
 * @property {string} [file]
 * @property {string | null} [source] an upscale's source image id
 * @property {string} [video] a video: the id of its file (its `id` is its first frame)
 * @property {string} [webp] an MP4's animated WebP fallback (an id)
 * @property {string} [video_file]
 * @property {string} [mime]
 * @property {number} [frames]
 * @property {number} [fps]
 * @property {string} [format] "mp4" | "webp"
 * @property {string} [grid] a grid sheet's description
 * @property {GridAxes} [grid_axes]
 * @property {Record<string, any>} [grid_base] a grid sheet's base parameters
 * @property {boolean} [random_seed]
 * @property {string[]} [unused] record keys that did not apply to the model
 */

/**
 * An image of a slot (FeatureInputs: ref_images, control_image, end_image).
 * @typedef {{name: string, width: number, height: number, thumb: Bytes}} SlotImage
 */

/**
 * The `init_image` trait: {} or the image.
 * @typedef {{name?: string, thumb?: Bytes, width?: number, height?: number, note?: string}} InitImage
 */

/**
 * The `form_rules` trait (qvac_nb/widgets/family_form.py form_rules).
 * @typedef {object} FormRules
 * @property {boolean} [video]
 * @property {string[]} [hidden]
 * @property {number} [size_multiple]
 * @property {string} [init_label]
 * @property {string[]} [init_params]
 * @property {boolean} [mask]
 * @property {boolean} [ref_images]
 * @property {boolean} [end_image]
 */

/**
 * The `model_info` trait (qvac_nb/widgets/studio.py model_info), {} without a model.
 * @typedef {object} ModelInfo
 * @property {string} [id]
 * @property {string} [family]
 * @property {string} [label]
 * @property {string} [source]
 * @property {string} [mode]
 * @property {boolean} [uses_guidance]
 * @property {boolean} [has_upscaler]
 * @property {number} [upscale_factor]
 * @property {string} [default_sampler]
 * @property {string} [default_scheduler]
 * @property {string[]} [engine_defaults]
 * @property {Record<string, any>} [defaults]
 * @property {string} [prediction]
 * @property {Record<string, string>} [companions]
 */

/**
 * A companion field of the model bar (family_form.companion_fields, with the catalogue names it suggests).
 * @typedef {{field: string, key: string, label: string, names?: string[]}} CompanionField
 */

/**
 * The `catalog` trait (qvac_nb/widgets/studio.py _catalog_names).
 * @typedef {object} Catalog
 * @property {string[]} [diffusion]
 * @property {string[]} [upscaler]
 * @property {CompanionField[]} [companion_fields]
 * @property {Record<string, Record<string, string>>} [companions]
 * @property {string[]} [predictions]
 */

/**
 * The `source_info` trait (qvac_nb/widgets/studio.py source_info).
 * @typedef {object} SourceInfo
 * @property {string} [source]
 * @property {string} [family]
 * @property {string} [label]
 * @property {Record<string, string>} [companions] model_config key -> "required" | "one of" | "optional"
 */

/**
 * The `inputs_shown` trait (FeatureInputs.show_inputs_for).
 * @typedef {{ref_images?: boolean, control_image?: boolean, end_image?: boolean, mask?: boolean, lora?: boolean}} InputsShown
 */

// ---------------------------------------------------------------- the widgets' synced traits

/**
 * ImageWidget (qvac_nb/widgets/base.py): every widget's.
 * @typedef {object} ImageWidgetTraits
 * @property {string} error
 * @property {string} error_param
 * @property {string} static_key
 */

/**
 * JobView (qvac_nb/widgets/jobview.py).
 * @typedef {object} JobViewOwnTraits
 * @property {string} kind
 * @property {Status} status
 * @property {GalleryEntry[]} images
 */
/** @typedef {ImageWidgetTraits & JobViewOwnTraits} JobViewTraits */

/**
 * Gallery (qvac_nb/widgets/gallery.py).
 * @typedef {object} GalleryOwnTraits
 * @property {GalleryEntry[]} images
 * @property {Schema} schema
 */
/** @typedef {ImageWidgetTraits & GalleryOwnTraits} GalleryTraits */

/**
 * The Studio's inputs beyond the form (its traits, which qvac_nb/widgets/inputs.py FeatureInputs fills).
 * @typedef {object} FeatureInputsTraits
 * @property {SlotImage[]} ref_images
 * @property {SlotImage[]} control_image
 * @property {SlotImage[]} end_image
 * @property {{width?: number, height?: number}} mask
 * @property {{name: string, source: string}[]} lora_files
 * @property {string[]} lora_folders
 * @property {[string, number][]} lora
 * @property {InputsShown} inputs_shown
 */

/**
 * Studio (qvac_nb/widgets/studio.py).
 * @typedef {object} StudioOwnTraits
 * @property {string} current_model
 * @property {ModelInfo} model_info
 * @property {string[]} loaded
 * @property {Catalog} catalog
 * @property {string[]} samplers
 * @property {string[]} schedulers
 * @property {Record<string, any>} params the form's values (random_seed too)
 * @property {FormRules} form_rules
 * @property {SourceInfo} source_info
 * @property {Schema} schema
 * @property {[number, number][]} size_presets
 * @property {Status} status
 * @property {boolean} busy
 * @property {GalleryEntry[]} gallery newest first
 * @property {InitImage} init_image
 * @property {string} output_dir
 */
/** @typedef {ImageWidgetTraits & FeatureInputsTraits & StudioOwnTraits} StudioTraits */

// ---------------------------------------------------------------- the widgets' models

/** @typedef {WidgetModel<StudioTraits, StudioFrontendSends>} StudioModel */
/** @typedef {WidgetModel<JobViewTraits, JobViewFrontendSends>} JobViewModel */
/** @typedef {WidgetModel<GalleryTraits, GalleryFrontendSends>} GalleryModel */

/**
 * What render() gets.
 * @template M
 * @typedef {{model: M, el: HTMLElement}} RenderProps
 */

export {};
