#include "library.h"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace sdabi {
namespace {

Api g_api{};
std::string g_path;
bool g_loaded = false;
std::mutex g_load_mutex;

template <typename Fn>
void resolve(void* handle, const char* symbol, Fn& slot, std::vector<std::string>& missing) {
    void* p = dlsym(handle, symbol);
    if (p == nullptr) {
        missing.emplace_back(symbol);
    }
    slot = reinterpret_cast<Fn>(p);
}

// A struct filled by the library's own *_init function must end exactly where ours
// does (the canary after it survives) and hold the engine's documented defaults at the
// fields we read, the last field included: a reordered or resized struct fails here.
template <typename T>
struct Canaried {
    T value;
    unsigned char guard[256];
};

void probe_layouts(const Api& a) {
    auto ctx = std::make_unique<Canaried<ContextParams>>();
    std::memset(ctx.get(), 0xA5, sizeof(*ctx));
    a.ctx_params_init(&ctx->value);
    for (unsigned char b : ctx->guard) {
        if (b != 0xA5) throw std::runtime_error("sd_ctx_params_t is larger than the layout qvac_nb binds");
    }
    const ContextParams& c = ctx->value;
    if (!c.free_params_immediately || !c.vae_decode_only || c.weight_type != kTypeCount || c.rng != 1 ||
        c.sampler_rng != kRngCount || c.prediction != kPredictionCount || !c.chroma_dit_mask ||
        c.chroma_t5_mask_pad != 1 || c.max_vram != 0.f) {
        throw std::runtime_error("sd_ctx_params_t defaults differ from the layout qvac_nb binds");
    }

    auto req = std::make_unique<Canaried<ImageRequest>>();
    std::memset(req.get(), 0xA5, sizeof(*req));
    a.image_request_init(&req->value);
    for (unsigned char b : req->guard) {
        if (b != 0xA5) throw std::runtime_error("sd_img_gen_params_t is larger than the layout qvac_nb binds");
    }
    const ImageRequest& r = req->value;
    const bool ok = r.width == 512 && r.height == 512 && r.clip_skip == -1 && r.strength == 0.75f &&
                    r.seed == -1 && r.batch_count == 1 && r.control_strength == 0.9f &&
                    r.sample.steps == 20 && r.sample.guidance.txt_cfg == 7.0f &&
                    r.sample.guidance.distilled == 3.5f && r.sample.method == kSampleMethodCount &&
                    r.sample.scheduler == kSchedulerCount && std::isinf(r.sample.flow_shift) &&
                    r.photo_maker.style_strength == 20.f && r.vae_tiling.overlap == 0.5f &&
                    r.cache.mode == 0 && r.cache.fn_compute_blocks == 8 &&
                    r.cache.spectrum_stop_percent == 0.9f && r.hires.upscaler == kHiresUpscalerLatent &&
                    r.hires.denoising_strength == 0.7f && r.hires.tile_size == 128;
    if (!ok) throw std::runtime_error("sd_img_gen_params_t defaults differ from the layout qvac_nb binds");

    auto vid = std::make_unique<Canaried<VideoRequest>>();
    std::memset(vid.get(), 0xA5, sizeof(*vid));
    a.video_request_init(&vid->value);
    for (unsigned char b : vid->guard) {
        if (b != 0xA5) throw std::runtime_error("sd_vid_gen_params_t is larger than the layout qvac_nb binds");
    }
    const VideoRequest& v = vid->value;
    const bool vid_ok = v.width == 512 && v.height == 512 && v.strength == 0.75f && v.seed == -1 &&
                        v.video_frames == 6 && v.moe_boundary == 0.875f && v.vace_strength == 1.f &&
                        v.sample.steps == 20 && v.high_noise_sample.steps == -1 &&
                        v.high_noise_sample.guidance.txt_cfg == 7.0f && std::isinf(v.high_noise_sample.flow_shift) &&
                        v.vae_tiling.overlap == 0.5f && v.cache.mode == 0 && v.cache.fn_compute_blocks == 8 &&
                        v.cache.spectrum_stop_percent == 0.9f;
    if (!vid_ok) throw std::runtime_error("sd_vid_gen_params_t defaults differ from the layout qvac_nb binds");

    // Enum ranges: the last name of each enum must be real and the next one "NONE".
    struct Range {
        const char* (*name)(Enum);
        Enum count;
        const char* what;
    };
    const Range ranges[] = {{a.sample_method_name, kSampleMethodCount, "sample_method_t"},
                            {a.scheduler_name, kSchedulerCount, "scheduler_t"},
                            {a.prediction_name, kPredictionCount, "prediction_t"},
                            {a.rng_name, kRngCount, "rng_type_t"}};
    for (const Range& e : ranges) {
        if (std::strcmp(e.name(e.count), "NONE") != 0 || std::strcmp(e.name(e.count - 1), "NONE") == 0) {
            throw std::runtime_error(std::string(e.what) + " has a different number of values than qvac_nb binds");
        }
    }
}

}  // namespace

const Api& load_library(const std::string& path) {
    std::lock_guard<std::mutex> lock(g_load_mutex);
    if (g_loaded) {
        if (path != g_path) {
            throw std::runtime_error("an engine library is already loaded from " + g_path +
                                     "; restart the process to use " + path);
        }
        return g_api;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* err = dlerror();
        throw std::runtime_error("cannot open the engine library " + path + ": " + (err ? err : "unknown error"));
    }
    Api a{};
    std::vector<std::string> missing;
    resolve(handle, "sd_set_log_callback", a.set_log_callback, missing);
    resolve(handle, "sd_set_progress_callback", a.set_progress_callback, missing);
    resolve(handle, "sd_set_preview_callback", a.set_preview_callback, missing);
    resolve(handle, "sd_get_num_physical_cores", a.physical_cores, missing);
    resolve(handle, "sd_get_system_info", a.system_info, missing);
    resolve(handle, "sd_type_name", a.type_name, missing);
    resolve(handle, "sd_rng_type_name", a.rng_name, missing);
    resolve(handle, "sd_sample_method_name", a.sample_method_name, missing);
    resolve(handle, "sd_scheduler_name", a.scheduler_name, missing);
    resolve(handle, "sd_prediction_name", a.prediction_name, missing);
    resolve(handle, "sd_lora_apply_mode_name", a.lora_apply_mode_name, missing);
    resolve(handle, "sd_ctx_params_init", a.ctx_params_init, missing);
    resolve(handle, "new_sd_ctx", a.new_ctx, missing);
    resolve(handle, "free_sd_ctx", a.free_ctx, missing);
    resolve(handle, "sd_get_default_sample_method", a.default_sample_method, missing);
    resolve(handle, "sd_get_default_scheduler", a.default_scheduler, missing);
    resolve(handle, "sd_img_gen_params_init", a.image_request_init, missing);
    resolve(handle, "generate_image", a.generate_image, missing);
    resolve(handle, "sd_vid_gen_params_init", a.video_request_init, missing);
    resolve(handle, "generate_video", a.generate_video, missing);
    resolve(handle, "sd_ctx_supports_video_generation", a.supports_video, missing);
    resolve(handle, "new_upscaler_ctx", a.new_upscaler, missing);
    resolve(handle, "free_upscaler_ctx", a.free_upscaler, missing);
    resolve(handle, "upscale", a.upscale, missing);
    resolve(handle, "get_upscale_factor", a.upscale_factor, missing);
    resolve(handle, "convert", a.convert, missing);
    resolve(handle, "sd_ctx_params_to_str", a.ctx_params_to_str, missing);
    resolve(handle, "sd_commit", a.commit, missing);
    resolve(handle, "sd_version", a.version, missing);
    // Symbols that only the bound release has: an older engine lacks the hires and
    // spectrum-cache API whose structs sit inside sd_img_gen_params_t.
    void (*hires_init)(Hires*) = nullptr;
    resolve(handle, "sd_hires_params_init", hires_init, missing);
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        dlclose(handle);
        throw std::runtime_error("the engine library " + path + " is not the stable-diffusion.cpp release qvac_nb binds " +
                                 "(stable-diffusion-cpp-python 0.4.7): missing symbols " + list);
    }
    try {
        probe_layouts(a);
    } catch (const std::runtime_error& e) {
        dlclose(handle);
        throw std::runtime_error("the engine library " + path + " (version " + a.version() + ", commit " + a.commit() +
                                 ") does not match qvac_nb's bindings: " + e.what());
    }
    g_api = a;
    g_path = path;
    g_loaded = true;
    return g_api;
}

const Api& api() {
    if (!g_loaded) throw std::runtime_error("the engine library is not loaded");
    return g_api;
}

const std::string& library_path() { return g_path; }

}  // namespace sdabi
