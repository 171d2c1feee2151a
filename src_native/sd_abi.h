// Our own declarations of the C ABI of stable-diffusion.cpp, as built by the pinned
// stable-diffusion-cpp-python==0.4.7. The library is opened at run time (dlopen), so
// nothing here links against it; library.cpp checks that a library matches this layout
// before any of these structs cross the boundary.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sdabi {

// Enums travel as C ints; the names the engine gives them are read from the library.
using Enum = int;

constexpr Enum kSampleMethodCount = 15;
constexpr Enum kSchedulerCount = 11;
constexpr Enum kPredictionCount = 6;
constexpr Enum kRngCount = 3;
constexpr Enum kTypeCount = 41;
constexpr Enum kLoraModeCount = 3;
constexpr Enum kPreviewProj = 1;
constexpr Enum kHiresUpscalerLatent = 1;

struct Tiling {
    bool enabled;
    int tile_x;
    int tile_y;
    float overlap;
    float rel_x;
    float rel_y;
};

struct Embedding {
    const char* name;
    const char* path;
};

struct ContextParams {
    const char* model;
    const char* clip_l;
    const char* clip_g;
    const char* clip_vision;
    const char* t5xxl;
    const char* llm;
    const char* llm_vision;
    const char* diffusion_model;
    const char* high_noise_diffusion_model;
    const char* vae;
    const char* taesd;
    const char* control_net;
    const Embedding* embeddings;
    uint32_t embedding_count;
    const char* photo_maker;
    const char* tensor_type_rules;
    bool vae_decode_only;
    bool free_params_immediately;
    int threads;
    Enum weight_type;
    Enum rng;
    Enum sampler_rng;
    Enum prediction;
    Enum lora_apply_mode;
    bool offload_to_cpu;
    bool mmap;
    bool clip_on_cpu;
    bool control_net_on_cpu;
    bool vae_on_cpu;
    bool flash_attn;
    bool diffusion_flash_attn;
    bool tae_preview_only;
    bool diffusion_conv_direct;
    bool vae_conv_direct;
    bool circular_x;
    bool circular_y;
    bool force_sdxl_vae_conv_scale;
    bool chroma_dit_mask;
    bool chroma_t5_mask;
    int chroma_t5_mask_pad;
    bool qwen_image_zero_cond_t;
    float max_vram;
};

struct Image {
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    uint8_t* data;
};

struct SkipLayerGuidance {
    int* layers;
    size_t layer_count;
    float start;
    float end;
    float scale;
};

struct Guidance {
    float txt_cfg;
    float img_cfg;
    float distilled;
    SkipLayerGuidance slg;
};

struct SampleParams {
    Guidance guidance;
    Enum scheduler;
    Enum method;
    int steps;
    float eta;
    int shifted_timestep;
    float* custom_sigmas;
    int custom_sigma_count;
    float flow_shift;
};

struct PhotoMaker {
    Image* id_images;
    int id_image_count;
    const char* id_embed_path;
    float style_strength;
};

struct CacheParams {
    Enum mode;
    float reuse_threshold;
    float start_percent;
    float end_percent;
    float error_decay_rate;
    bool relative_threshold;
    bool reset_error_on_compute;
    int fn_compute_blocks;
    int bn_compute_blocks;
    float residual_diff_threshold;
    int max_warmup_steps;
    int max_cached_steps;
    int max_continuous_cached_steps;
    int taylorseer_derivatives;
    int taylorseer_skip_interval;
    const char* scm_mask;
    bool scm_dynamic;
    float spectrum_w;
    int spectrum_m;
    float spectrum_lam;
    int spectrum_window;
    float spectrum_flex_window;
    int spectrum_warmup_steps;
    float spectrum_stop_percent;
};

struct Lora {
    bool high_noise;
    float multiplier;
    const char* path;
};

struct Hires {
    bool enabled;
    Enum upscaler;
    const char* model_path;
    float scale;
    int target_width;
    int target_height;
    int steps;
    float denoising_strength;
    int tile_size;
};

struct ImageRequest {
    const Lora* loras;
    uint32_t lora_count;
    const char* prompt;
    const char* negative_prompt;
    int clip_skip;
    Image init_image;
    Image* ref_images;
    int ref_image_count;
    bool auto_resize_ref_image;
    bool increase_ref_index;
    Image mask;
    int width;
    int height;
    SampleParams sample;
    float strength;
    int64_t seed;
    int batch_count;
    Image control_image;
    float control_strength;
    PhotoMaker photo_maker;
    Tiling vae_tiling;
    CacheParams cache;
    Hires hires;
};

// sd_vid_gen_params_t (Wan and SVD video models).
struct VideoRequest {
    const Lora* loras;
    uint32_t lora_count;
    const char* prompt;
    const char* negative_prompt;
    int clip_skip;
    Image init_image;
    Image end_image;
    Image* control_frames;
    int control_frame_count;
    int width;
    int height;
    SampleParams sample;
    SampleParams high_noise_sample;
    float moe_boundary;
    float strength;
    int64_t seed;
    int video_frames;
    float vace_strength;
    Tiling vae_tiling;
    CacheParams cache;
};

struct Ctx;       // sd_ctx_t
struct UpCtx;     // upscaler_ctx_t

using LogFn = void (*)(Enum level, const char* text, void* data);
using ProgressFn = void (*)(int step, int steps, float seconds, void* data);
using PreviewFn = void (*)(int step, int frame_count, Image* frames, bool noisy, void* data);

}  // namespace sdabi
