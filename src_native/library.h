// Opens a libstable-diffusion build at run time and checks that it speaks the ABI in
// sd_abi.h before anything else touches it.
#pragma once

#include <string>

#include "sd_abi.h"

namespace sdabi {

struct Api {
    void (*set_log_callback)(LogFn, void*);
    void (*set_progress_callback)(ProgressFn, void*);
    void (*set_preview_callback)(PreviewFn, Enum mode, int interval, bool denoised, bool noisy, void*);
    int32_t (*physical_cores)();
    const char* (*system_info)();
    const char* (*type_name)(Enum);
    const char* (*rng_name)(Enum);
    const char* (*sample_method_name)(Enum);
    const char* (*scheduler_name)(Enum);
    const char* (*prediction_name)(Enum);
    const char* (*lora_apply_mode_name)(Enum);
    void (*ctx_params_init)(ContextParams*);
    Ctx* (*new_ctx)(const ContextParams*);
    void (*free_ctx)(Ctx*);
    Enum (*default_sample_method)(const Ctx*);
    Enum (*default_scheduler)(const Ctx*, Enum method);
    void (*image_request_init)(ImageRequest*);
    Image* (*generate_image)(Ctx*, const ImageRequest*);
    void (*video_request_init)(VideoRequest*);
    // Returns *frame_count frames (malloc'd array of malloc'd pixels), or nullptr.
    Image* (*generate_video)(Ctx*, const VideoRequest*, int* frame_count);
    bool (*supports_video)(const Ctx*);
    UpCtx* (*new_upscaler)(const char* path, bool offload, bool direct, int threads, int tile_size);
    void (*free_upscaler)(UpCtx*);
    Image (*upscale)(UpCtx*, Image input, uint32_t factor);
    int (*upscale_factor)(UpCtx*);
    // Rewrites a model file with its weights in another type (the engine's `convert`).
    bool (*convert)(const char* input, const char* vae, const char* output, Enum type, const char* type_rules,
                    bool convert_names);
    // The engine's own text of a sd_ctx_params_t (malloc'd; the caller frees it).
    char* (*ctx_params_to_str)(const ContextParams*);
    const char* (*commit)();
    const char* (*version)();
};

// Loads `path`, resolves every symbol we call and probes the struct layouts.
// Throws std::runtime_error naming what does not match; on success the library stays
// loaded for the life of the process (the engine keeps global state).
const Api& load_library(const std::string& path);

// The loaded library, or throws if load_library has not succeeded yet.
const Api& api();
const std::string& library_path();

}  // namespace sdabi
