// qvac_nb._engine: nanobind bindings over the engine library opened by library.cpp.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bridge.h"
#include "library.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qvac {
namespace {

// const: read-only arrays (e.g. np.asarray of a PIL image) are accepted; the engine only reads inputs.
using Pixels = nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using OwnedPixels = nb::ndarray<nb::numpy, uint8_t, nb::ndim<3>>;
// A one-channel image (inpainting mask), uint8 (height, width).
using MaskPixels = nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

struct EngineError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The engine's own error lines explain most failures; put them in the exception.
std::string failure(const std::string& what, const Job& job) {
    std::string msg = what;
    for (const auto& line : job.errors) msg += "\n  " + line.substr(0, line.find_last_not_of('\n') + 1);
    return msg;
}

sdabi::Image view_of(const Pixels& px) {
    if (px.shape(2) != 3) throw std::invalid_argument("images must have 3 channels (RGB), got " + std::to_string(px.shape(2)));
    return sdabi::Image{uint32_t(px.shape(1)), uint32_t(px.shape(0)), 3, const_cast<uint8_t*>(px.data())};
}

sdabi::Image mask_view_of(const MaskPixels& px) {
    return sdabi::Image{uint32_t(px.shape(1)), uint32_t(px.shape(0)), 1, const_cast<uint8_t*>(px.data())};
}

// Hands the engine's malloc'd pixels to numpy without a copy; numpy frees them once.
OwnedPixels adopt(sdabi::Image img) {
    nb::capsule owner(img.data, [](void* p) noexcept { std::free(p); });
    return OwnedPixels(img.data, {img.height, img.width, img.channels}, owner);
}

void free_images(sdabi::Image* images, int count) {
    if (images == nullptr) return;
    for (int i = 0; i < count; ++i) std::free(images[i].data);
    std::free(images);
}


// A file path from Python: str (encoded the way the OS encodes file names, so a surrogate-escaped
// name from os.fsdecode gets its original bytes back) or bytes (used as is). Any name the OS accepts
// must reach the engine; std::string's own caster only takes valid UTF-8 str.
std::string os_path(nb::handle value, const char* what) {
    if (PyBytes_Check(value.ptr())) {
        return std::string(PyBytes_AS_STRING(value.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(value.ptr())));
    }
    if (!PyUnicode_Check(value.ptr())) {
        throw nb::type_error((std::string(what) + ": expected a str or bytes path").c_str());
    }
    nb::object encoded = nb::steal(PyUnicode_EncodeFSDefault(value.ptr()));
    if (!encoded.is_valid()) throw nb::python_error();
    return std::string(PyBytes_AS_STRING(encoded.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(encoded.ptr())));
}

// ------------------------------------------------------------------ context config

struct ContextConfig {
    sdabi::ContextParams raw{};
    std::string model, clip_l, clip_g, t5xxl, llm, vae, taesd, diffusion_model;
    std::string control_net;
    std::string clip_vision, llm_vision, high_noise_diffusion_model, photo_maker;
    // Textual-inversion embeddings as (name, path); the engine reads them at load and when a prompt names them.
    std::vector<std::pair<std::string, std::string>> embeddings;
    std::vector<sdabi::Embedding> embedding_refs;  // points into `embeddings`; rebuilt by finish()

    ContextConfig() {
        sdabi::api().ctx_params_init(&raw);
        // One context generates again and again; the engine's default frees weights after one image.
        raw.free_params_immediately = false;
        raw.vae_decode_only = false;  // img2img encodes the init image
    }

    const sdabi::ContextParams& finish() {
        auto str = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
        raw.model = str(model);
        raw.clip_l = str(clip_l);
        raw.clip_g = str(clip_g);
        raw.clip_vision = str(clip_vision);
        raw.t5xxl = str(t5xxl);
        raw.llm = str(llm);
        raw.llm_vision = str(llm_vision);
        raw.vae = str(vae);
        raw.taesd = str(taesd);
        raw.diffusion_model = str(diffusion_model);
        raw.high_noise_diffusion_model = str(high_noise_diffusion_model);
        raw.control_net = str(control_net);
        raw.photo_maker = str(photo_maker);
        embedding_refs.clear();
        for (const auto& [name, path] : embeddings) embedding_refs.push_back({name.c_str(), path.c_str()});
        raw.embeddings = embedding_refs.empty() ? nullptr : embedding_refs.data();
        raw.embedding_count = uint32_t(embedding_refs.size());
        raw.free_params_immediately = false;
        return raw;
    }

    // What the engine reads from these parameters, in its own words (sd_ctx_params_to_str).
    std::string engine_view() {
        const sdabi::ContextParams& params = finish();
        char* text = sdabi::api().ctx_params_to_str(&params);
        if (text == nullptr) throw std::runtime_error("the engine could not describe the context parameters");
        std::string out(text);
        std::free(text);
        return out;
    }
};

// ------------------------------------------------------------------ generation request

struct Request {
    sdabi::ImageRequest raw{};
    std::string prompt, negative_prompt;
    std::optional<Pixels> init_image;
    std::vector<Pixels> ref_images;
    std::vector<std::pair<std::string, float>> loras;
    // Inpainting, ControlNet and hires-fix inputs (see the bindings for their shapes).
    std::optional<MaskPixels> mask;
    std::optional<Pixels> control_image;
    std::string hires_model_path;
    // Skip-layer guidance layers and a custom sigma schedule: the engine takes pointers, which
    // generate() aims at these for the length of the call.
    std::vector<int> skip_layers;
    std::vector<float> sigmas;
    // PhotoMaker: the ID images and, for v2, the face embeddings file its face_detect.py writes.
    std::vector<Pixels> pm_id_images;
    std::string pm_id_embed_path;

    Request() { sdabi::api().image_request_init(&raw); }
};

// One video: the engine's sd_vid_gen_params_t plus the storage its pointers aim at.
struct VideoRequest {
    sdabi::VideoRequest raw{};
    std::string prompt, negative_prompt;
    std::optional<Pixels> init_image, end_image;
    std::vector<Pixels> control_frames;
    std::vector<std::pair<std::string, float>> loras;  // (path, weight); high-noise LoRAs are not bound

    VideoRequest() { sdabi::api().video_request_init(&raw); }
};

// ------------------------------------------------------------------ context

class Context {
public:
    Context(ContextConfig& config, Job& job) {
        const sdabi::ContextParams& params = config.finish();
        {
            nb::gil_scoped_release release;
            EngineTurn turn(&job);
            job.phase.store(static_cast<int>(Phase::Load));
            ctx_ = sdabi::api().new_ctx(&params);
        }
        flush_logs();
        if (ctx_ == nullptr) {
            rethrow_callback_error(job);
            throw EngineError(failure("the engine could not load the model", job));
        }
        // Loading cannot be unwound (worker threads), so a cancel during load lands here.
        if (job.cancelled()) {
            close();
            rethrow_callback_error(job);
            throw Cancelled();
        }
    }

    ~Context() {
        if (ctx_ != nullptr) {
            nb::gil_scoped_release release;
            Job job;
            EngineTurn turn(&job);
            sdabi::api().free_ctx(ctx_);
            ctx_ = nullptr;
        }
    }

    void close() {
        if (ctx_ == nullptr) return;
        {
            nb::gil_scoped_release release;
            Job job;
            EngineTurn turn(&job);
            sdabi::api().free_ctx(ctx_);
            ctx_ = nullptr;
        }
        flush_logs();
    }

    bool closed() const { return ctx_ == nullptr; }

    std::string default_sample_method() const {
        const sdabi::Api& a = sdabi::api();
        return a.sample_method_name(a.default_sample_method(live()));
    }

    std::string default_scheduler(const std::string& method) const {
        const sdabi::Api& a = sdabi::api();
        sdabi::Enum m = sdabi::kSampleMethodCount;
        for (sdabi::Enum i = 0; i < sdabi::kSampleMethodCount; ++i) {
            if (method == a.sample_method_name(i)) m = i;
        }
        if (m == sdabi::kSampleMethodCount) m = a.default_sample_method(live());
        return a.scheduler_name(a.default_scheduler(live(), m));
    }

    std::vector<OwnedPixels> generate(Request& req, Job& job) {
        sdabi::Ctx* ctx = live();
        sdabi::ImageRequest raw = req.raw;
        raw.prompt = req.prompt.c_str();
        raw.negative_prompt = req.negative_prompt.c_str();
        if (req.init_image) raw.init_image = view_of(*req.init_image);
        if (req.mask) raw.mask = mask_view_of(*req.mask);
        if (req.control_image) raw.control_image = view_of(*req.control_image);
        raw.hires.model_path = req.hires_model_path.empty() ? nullptr : req.hires_model_path.c_str();
        std::vector<sdabi::Image> refs;
        for (const Pixels& px : req.ref_images) refs.push_back(view_of(px));
        raw.ref_images = refs.empty() ? nullptr : refs.data();
        raw.ref_image_count = int(refs.size());
        std::vector<sdabi::Lora> loras;
        for (const auto& [path, weight] : req.loras) loras.push_back({false, weight, path.c_str()});
        raw.loras = loras.empty() ? nullptr : loras.data();
        raw.lora_count = uint32_t(loras.size());
        raw.sample.guidance.slg.layers = req.skip_layers.empty() ? nullptr : req.skip_layers.data();
        raw.sample.guidance.slg.layer_count = req.skip_layers.size();
        raw.sample.custom_sigmas = req.sigmas.empty() ? nullptr : req.sigmas.data();
        raw.sample.custom_sigma_count = int(req.sigmas.size());
        std::vector<sdabi::Image> id_images;
        for (const Pixels& px : req.pm_id_images) id_images.push_back(view_of(px));
        raw.photo_maker.id_images = id_images.empty() ? nullptr : id_images.data();
        raw.photo_maker.id_image_count = int(id_images.size());
        raw.photo_maker.id_embed_path = req.pm_id_embed_path.empty() ? nullptr : req.pm_id_embed_path.c_str();

        sdabi::Image* images = nullptr;
        bool unwound = false;
        {
            nb::gil_scoped_release release;
            EngineTurn turn(&job);
            if (!job.cancelled()) {
                job.phase_marks.clear();
                job.mark_phase(Phase::Encode);
                try {
                    images = sdabi::api().generate_image(ctx, &raw);
                } catch (const CancelUnwind&) {
                    unwound = true;
                }
                job.mark_end();
            }
        }
        flush_logs();
        if (unwound || (images == nullptr && job.cancelled())) {
            rethrow_callback_error(job);
            throw Cancelled();
        }
        rethrow_callback_error(job);
        if (images == nullptr) throw EngineError(failure("the engine failed to generate an image", job));
        std::vector<OwnedPixels> out;
        for (int i = 0; i < raw.batch_count; ++i) {
            if (images[i].data == nullptr) continue;
            out.push_back(adopt(images[i]));
            images[i].data = nullptr;  // now owned by numpy
        }
        free_images(images, raw.batch_count);
        if (job.cancelled()) throw Cancelled();  // cancelled while decoding: the result is dropped
        return out;
    }

    bool supports_video() const { return sdabi::api().supports_video(live()); }

    // The frames of one video, each uint8 (height, width, 3); raises Cancelled or EngineError.
    std::vector<OwnedPixels> generate_video(VideoRequest& req, Job& job) {
        sdabi::Ctx* ctx = live();
        sdabi::VideoRequest raw = req.raw;
        raw.prompt = req.prompt.c_str();
        raw.negative_prompt = req.negative_prompt.c_str();
        if (req.init_image) raw.init_image = view_of(*req.init_image);
        if (req.end_image) raw.end_image = view_of(*req.end_image);
        std::vector<sdabi::Image> frames_in;
        for (const Pixels& px : req.control_frames) frames_in.push_back(view_of(px));
        raw.control_frames = frames_in.empty() ? nullptr : frames_in.data();
        raw.control_frame_count = int(frames_in.size());
        std::vector<sdabi::Lora> loras;
        for (const auto& [path, weight] : req.loras) loras.push_back({false, weight, path.c_str()});
        raw.loras = loras.empty() ? nullptr : loras.data();
        raw.lora_count = uint32_t(loras.size());

        sdabi::Image* frames = nullptr;
        int count = 0;
        bool unwound = false;
        {
            nb::gil_scoped_release release;
            EngineTurn turn(&job);
            if (!job.cancelled()) {
                job.phase_marks.clear();
                job.mark_phase(Phase::Encode);
                try {
                    frames = sdabi::api().generate_video(ctx, &raw, &count);
                } catch (const CancelUnwind&) {
                    unwound = true;
                }
                job.mark_end();
            }
        }
        flush_logs();
        if (unwound || (frames == nullptr && job.cancelled())) {
            rethrow_callback_error(job);
            throw Cancelled();
        }
        rethrow_callback_error(job);
        if (frames == nullptr) throw EngineError(failure("the engine failed to generate a video", job));
        std::vector<OwnedPixels> out;
        for (int i = 0; i < count; ++i) {
            if (frames[i].data == nullptr) continue;
            out.push_back(adopt(frames[i]));
            frames[i].data = nullptr;  // now owned by numpy
        }
        free_images(frames, count);
        if (job.cancelled()) throw Cancelled();
        return out;
    }

private:
    sdabi::Ctx* live() const {
        if (ctx_ == nullptr) throw std::runtime_error("this engine context has been closed");
        return ctx_;
    }
    sdabi::Ctx* ctx_ = nullptr;
};

// ------------------------------------------------------------------ upscaler

class Upscaler {
public:
    Upscaler(nb::handle path_obj, int threads, int tile_size, bool offload, bool direct, Job& job) {
        const std::string path = os_path(path_obj, "path");
        {
            nb::gil_scoped_release release;
            EngineTurn turn(&job);
            job.phase.store(static_cast<int>(Phase::Load));
            ctx_ = sdabi::api().new_upscaler(path.c_str(), offload, direct, threads, tile_size);
            if (ctx_ != nullptr) factor_ = sdabi::api().upscale_factor(ctx_);
        }
        flush_logs();
        rethrow_callback_error(job);
        if (ctx_ == nullptr) throw EngineError(failure("the engine could not load the upscaler " + path, job));
    }

    ~Upscaler() { close_quiet(); }

    void close() {
        close_quiet();
        flush_logs();
    }

    bool closed() const { return ctx_ == nullptr; }
    int factor() const { return factor_; }

    OwnedPixels upscale(Pixels image, int factor, Job& job) {
        if (ctx_ == nullptr) throw std::runtime_error("this upscaler has been closed");
        sdabi::Image input = view_of(image);
        sdabi::Image out{};
        {
            nb::gil_scoped_release release;
            EngineTurn turn(&job);
            job.phase.store(static_cast<int>(Phase::Upscale));
            if (!job.cancelled()) out = sdabi::api().upscale(ctx_, input, uint32_t(factor));
        }
        flush_logs();
        rethrow_callback_error(job);
        if (job.cancelled()) {
            std::free(out.data);
            throw Cancelled();
        }
        if (out.data == nullptr) throw EngineError(failure("the engine failed to upscale the image", job));
        return adopt(out);
    }

private:
    void close_quiet() {
        if (ctx_ == nullptr) return;
        nb::gil_scoped_release release;
        Job job;
        EngineTurn turn(&job);
        sdabi::api().free_upscaler(ctx_);
        ctx_ = nullptr;
    }
    sdabi::UpCtx* ctx_ = nullptr;
    int factor_ = 0;
};

// ------------------------------------------------------------------ convert

// The engine's convert: reads `input` (and a VAE put under "vae."), writes `output` with its weights in
// `type`. The engine picks the output format from the name (".safetensors", else GGUF). Progress comes
// from the engine's tensor loader (phase "load"); writing reports nothing. Not cancellable inside the
// engine (its loader runs threads): qvac_nb runs it in a process of its own and ends that to cancel.
void convert_file(nb::handle input_obj, nb::handle vae_obj, nb::handle output_obj, int type,
                  const std::string& type_rules, bool convert_names, Job& job) {
    if (type < 0 || type >= sdabi::kTypeCount) {
        throw std::invalid_argument("weight type index out of range: " + std::to_string(type));
    }
    const std::string input = os_path(input_obj, "input");
    const std::string vae = vae_obj.is_none() ? std::string() : os_path(vae_obj, "vae");
    const std::string output = os_path(output_obj, "output");
    bool ok = false;
    {
        nb::gil_scoped_release release;
        EngineTurn turn(&job);
        job.phase.store(static_cast<int>(Phase::Load));
        ok = sdabi::api().convert(input.c_str(), vae.empty() ? nullptr : vae.c_str(), output.c_str(), type,
                                  type_rules.c_str(), convert_names);
    }
    flush_logs();
    rethrow_callback_error(job);
    if (!ok) throw EngineError(failure("the engine could not convert " + input, job));
}

// The `loras` property of Request and VideoRequest: (path, weight) pairs, paths read back as bytes.
template <typename T>
nb::list get_loras(T& r) {
    nb::list out;
    for (const auto& [path, weight] : r.loras) out.append(nb::make_tuple(nb::bytes(path.data(), path.size()), weight));
    return out;
}

template <typename T>
void set_loras(T& r, nb::iterable items) {
    std::vector<std::pair<std::string, float>> loras;
    for (nb::handle item : items) {
        nb::tuple pair = nb::cast<nb::tuple>(item);
        loras.push_back({os_path(pair[0], "loras"), nb::cast<float>(pair[1])});
    }
    r.loras = std::move(loras);
}

std::vector<std::string> names(const char* (*name)(sdabi::Enum), sdabi::Enum count) {
    std::vector<std::string> out;
    for (sdabi::Enum i = 0; i < count; ++i) out.emplace_back(name(i));
    return out;
}

}  // namespace
}  // namespace qvac

#define RW(cls, field, path, ...)                                                                      \
    def_prop_rw(                                                                                        \
        field, [](cls& o) { return o.path; }, [](cls& o, decltype(cls{}.path) v) { o.path = v; }, ##__VA_ARGS__)
// A path field: set from str or bytes (see os_path), read back as bytes (the name may not be UTF-8).
#define PATH(cls, field, member, ...)                                                                  \
    def_prop_rw(                                                                                         \
        field, [](cls& o) { return nb::bytes(o.member.data(), o.member.size()); },                       \
        [](cls& o, nb::handle v) { o.member = os_path(v, field); },                                      \
        nb::for_getter(nb::sig("def " field "(self, /) -> bytes")),                                       \
        nb::for_setter(nb::sig("def " field "(self, value: str | bytes, /) -> None")),  \
        ##__VA_ARGS__)

// Docstrings of the enum-valued fields: they hold indices into the engine's own name lists.
#define ENUM_DOC(key) "index into enum_names()['" key "'] (see qvac_nb.engine_types)"

NB_MODULE(_engine, m) {
    using namespace qvac;
    m.doc() =
        "qvac_nb's binding of the stable-diffusion.cpp C API.\n\n"
        "The engine library is opened at run time with load_library() (qvac_nb.engine does it);\n"
        "importing this module needs no library. A ContextConfig describes the model files and\n"
        "load options, Context loads them and generates images from a Request; Upscaler runs an\n"
        "ESRGAN model. Every engine call takes a Job, which reports progress and previews and can\n"
        "be cancelled from another thread. Images are uint8 numpy arrays of shape (height, width, 3).\n"
        "Enum-valued fields (sampler, scheduler, prediction, weight type, rng) are indices into the\n"
        "lists enum_names() returns; qvac_nb.engine_types has them as Literal types.";
    // Models still loaded at interpreter exit are freed by the atexit hook in models.py;
    // anything left after that is process teardown, not a leak worth reporting.
    nb::set_leak_warnings(false);

    nb::exception<Cancelled>(m, "Cancelled");
    nb::exception<EngineError>(m, "EngineError");
    m.def("load_library", [](const std::string& path) {
        sdabi::load_library(path);
        install_log_callback();
    }, "path"_a, "Open and check an engine library (a path to libstable-diffusion); once per process.");
    m.def("library_loaded", [] {
        try { sdabi::api(); return true; } catch (const std::exception&) { return false; }
    }, "Whether load_library() has succeeded in this process.");
    m.def("library_info", [] {
        const sdabi::Api& a = sdabi::api();
        nb::dict d;
        d["path"] = sdabi::library_path();
        d["version"] = std::string(a.version());
        d["commit"] = std::string(a.commit());
        d["system_info"] = std::string(a.system_info());
        d["physical_cores"] = a.physical_cores();
        return d;
    }, nb::sig("def library_info() -> dict[str, str | int]"),
       "The loaded library: path, version, commit, system_info (str) and physical_cores (int).");
    m.def("enum_names", [] {
        const sdabi::Api& a = sdabi::api();
        nb::dict d;
        d["sample_method"] = names(a.sample_method_name, sdabi::kSampleMethodCount);
        d["scheduler"] = names(a.scheduler_name, sdabi::kSchedulerCount);
        d["prediction"] = names(a.prediction_name, sdabi::kPredictionCount);
        d["rng"] = names(a.rng_name, sdabi::kRngCount);
        d["lora_apply_mode"] = names(a.lora_apply_mode_name, sdabi::kLoraModeCount);
        std::vector<std::string> types;
        for (sdabi::Enum i = 0; i < sdabi::kTypeCount; ++i) types.emplace_back(a.type_name(i));
        d["type"] = types;
        return d;
    }, nb::sig("def enum_names() -> dict[str, list[str]]"),
       "The engine's names of its enums, by index: keys sample_method, scheduler, prediction, rng,\n"
       "lora_apply_mode and type (weight types; some indices are unused and named 'NONE' or similar).");
    m.def("set_log_handler", &set_log_handler, "handler"_a.none(),
          nb::sig("def set_log_handler(handler: collections.abc.Callable[[int, bytes], None] | None) -> None"),
          "handler(level: int, text: bytes) receives engine log lines (0 debug .. 3 error); None drops them.");
    m.def("flush_logs", &flush_logs, "Hand queued engine log lines to the log handler (called after engine calls).");

    nb::class_<Job>(m, "Job", "What one engine call reports to, and how it is stopped (cancel() from any thread).")
        .def(nb::init<>())
        .def_prop_rw(
            "on_progress", [](const Job& j) { return j.on_progress; },
            [](Job& j, nb::object f) { j.on_progress = std::move(f); },
            nb::for_getter(nb::sig(
                "def on_progress(self, /) -> collections.abc.Callable[[int, int, float, str], None] | None")),
            nb::for_setter(nb::sig(
                "def on_progress(self, value: collections.abc.Callable[[int, int, float, str], None] | None, /) "
                "-> None")),
            "on_progress(step, total, seconds_per_step, phase), called from the engine's thread with the GIL.")
        .def_prop_rw(
            "on_preview", [](const Job& j) { return j.on_preview; },
            [](Job& j, nb::object f) { j.on_preview = std::move(f); },
            nb::for_getter(nb::sig(
                "def on_preview(self, /) -> collections.abc.Callable[[int, int, int, int, bytes], None] | None")),
            nb::for_setter(nb::sig(
                "def on_preview(self, value: collections.abc.Callable[[int, int, int, int, bytes], None] | None, /) "
                "-> None")),
            "on_preview(step, width, height, channels, pixels): a latent preview as packed uint8 RGB bytes.")
        .def_rw("preview_interval", &Job::preview_interval, "Send a preview every this many sampling steps.")
        .def_rw("quiet_load", &Job::quiet_load,
                "Load progress is stored for load_progress instead of calling on_progress (which needs the GIL).")
        .def_prop_ro(
            "load_progress",
            [](const Job& j) -> std::optional<std::pair<int, int>> {
                const int64_t packed = j.load_progress.load();
                if (packed < 0) return std::nullopt;
                return std::make_pair(int(packed >> 32), int(uint32_t(packed)));
            },
            "(step, total) of the load's last progress report under quiet_load, None before the first.")
        .def("cancel", &Job::cancel, "Stop at the next sampling step (thread-safe, no GIL needed by the engine).")
        .def_prop_ro("cancelled", &Job::cancelled, "Whether cancel() was called.")
        .def_prop_ro("phase", [](const Job& j) { return std::string(phase_name(static_cast<Phase>(j.phase.load()))); },
                     nb::for_getter(nb::sig(
                         "def phase(self, /) -> typing.Literal['load', 'encode', 'sample', 'decode', 'upscale']")),
                     "The engine's current phase of this job.")
        .def_prop_ro("batch_index", [](const Job& j) { return j.batch_index.load(); },
                     "Index of the image of the batch being generated (0-based).")
        .def_prop_ro(
            "phase_marks",
            [](const Job& j) {
                std::vector<std::pair<std::string, double>> out;
                if (j.phase_marks.empty()) return out;
                const int64_t t0 = j.phase_marks.front().second;
                for (const auto& [p, ns] : j.phase_marks) {
                    out.emplace_back(p < 0 ? "end" : phase_name(static_cast<Phase>(p)), double(ns - t0) / 1e6);
                }
                return out;
            },
            "(phase, milliseconds since the call started) of the last generate(): at each phase change, each batch "
            "image's sampling start and each latent's decode end; 'end' last.");

    using CC = ContextConfig;
    nb::class_<CC>(m, "ContextConfig", "Model files and load options of a Context (empty path = not used).")
        .def(nb::init<>())
        .PATH(CC, "model", model, "Full checkpoint (UNet models), or empty with diffusion_model (str or bytes).")
        .PATH(CC, "clip_l", clip_l)
        .PATH(CC, "clip_g", clip_g)
        .PATH(CC, "t5xxl", t5xxl)
        .PATH(CC, "llm", llm, "LLM text encoder (e.g. FLUX.2's Qwen3).")
        .PATH(CC, "vae", vae)
        .PATH(CC, "taesd", taesd, "Tiny autoencoder used for latent previews.")
        .PATH(CC, "diffusion_model", diffusion_model, "Standalone diffusion model (DiT families).")
        .PATH(CC, "control_net", control_net, "ControlNet model (SD 1.x/2.x/XL); empty = none.")
        .PATH(CC, "clip_vision", clip_vision, "CLIP vision encoder (Wan 2.1 image-to-video).")
        .PATH(CC, "llm_vision", llm_vision, "Vision tower of the LLM text encoder (Qwen-Image-Edit's Qwen2.5-VL).")
        .PATH(CC, "high_noise_diffusion_model", high_noise_diffusion_model,
              "Second diffusion model for the high-noise steps (Wan 2.2 A14B).")
        .PATH(CC, "photo_maker", photo_maker, "PhotoMaker ID encoder (SDXL); a path containing 'v2' selects v2.")
        .def_prop_rw(
            "embeddings",
            [](CC& c) {
                nb::list out;
                for (const auto& [name, path] : c.embeddings) {
                    out.append(nb::make_tuple(name, nb::bytes(path.data(), path.size())));
                }
                return out;
            },
            [](CC& c, nb::iterable items) {
                std::vector<std::pair<std::string, std::string>> embeddings;
                for (nb::handle item : items) {
                    nb::tuple pair = nb::cast<nb::tuple>(item);
                    if (pair.size() != 2) throw nb::type_error("embeddings: expected (name, path) pairs");
                    embeddings.emplace_back(nb::cast<std::string>(pair[0]), os_path(pair[1], "embeddings"));
                }
                c.embeddings = std::move(embeddings);
            },
            nb::for_getter(nb::sig("def embeddings(self, /) -> list[tuple[str, bytes]]")),
            nb::for_setter(nb::sig(
                "def embeddings(self, value: collections.abc.Iterable[tuple[str, str | bytes]], /) -> None")),
            "Textual-inversion embeddings as (name, path) pairs; a prompt uses one by its name (SD 1.x/2.x/XL).")
        .RW(CC, "chroma_use_dit_mask", raw.chroma_dit_mask,
            "Chroma: mask padding tokens in the DiT (engine default on).")
        .RW(CC, "chroma_use_t5_mask", raw.chroma_t5_mask, "Chroma: mask padding tokens in T5.")
        .RW(CC, "chroma_t5_mask_pad", raw.chroma_t5_mask_pad, "Chroma: padding tokens left unmasked after the prompt.")
        .RW(CC, "qwen_image_zero_cond_t", raw.qwen_image_zero_cond_t,
            "Qwen-Image-Edit 2511 mode (its edits degrade without it).")
        .RW(CC, "circular_x", raw.circular_x, "Wrap convolutions around horizontally (tileable images).")
        .RW(CC, "circular_y", raw.circular_y, "Wrap convolutions around vertically (tileable images).")
        .RW(CC, "force_sdxl_vae_conv_scale", raw.force_sdxl_vae_conv_scale)
        .RW(CC, "tae_preview_only", raw.tae_preview_only, "taesd only draws previews; the VAE decodes the image.")
        .RW(CC, "max_vram", raw.max_vram, "GiB budget of a graph segment on the device; 0 = no graph splitting.")
        .def("engine_view", &CC::engine_view,
             "The engine's own text of these parameters (sd_ctx_params_to_str): what it will read.")
        .RW(CC, "threads", raw.threads, "CPU threads; -1 = the engine's choice.")
        .RW(CC, "weight_type", raw.weight_type, ENUM_DOC("type"))
        .RW(CC, "rng", raw.rng, ENUM_DOC("rng"))
        .RW(CC, "sampler_rng", raw.sampler_rng, ENUM_DOC("rng"))
        .RW(CC, "prediction", raw.prediction, ENUM_DOC("prediction"))
        .RW(CC, "lora_apply_mode", raw.lora_apply_mode, ENUM_DOC("lora_apply_mode"))
        .RW(CC, "offload_to_cpu", raw.offload_to_cpu)
        .RW(CC, "mmap", raw.mmap)
        .RW(CC, "clip_on_cpu", raw.clip_on_cpu)
        .RW(CC, "vae_on_cpu", raw.vae_on_cpu)
        .RW(CC, "control_net_on_cpu", raw.control_net_on_cpu, "Keep the ControlNet on the CPU (device='cpu').")
        .RW(CC, "flash_attn", raw.flash_attn)
        .RW(CC, "diffusion_flash_attn", raw.diffusion_flash_attn)
        .RW(CC, "diffusion_conv_direct", raw.diffusion_conv_direct)
        .RW(CC, "vae_conv_direct", raw.vae_conv_direct)
        .RW(CC, "vae_decode_only", raw.vae_decode_only)
        .def_prop_ro("free_params_immediately", [](const CC& c) { return c.raw.free_params_immediately; },
                     "Always False: a context generates many times.");

    m.def("convert", &convert_file, "input"_a, "vae"_a.none(), "output"_a, "weight_type"_a, "tensor_type_rules"_a,
          "convert_names"_a, "job"_a,
          nb::sig("def convert(input: str | bytes, vae: str | bytes | None, output: str | bytes, weight_type: int, "
                  "tensor_type_rules: str, convert_names: bool, job: Job) -> None"),
          "Write input (plus an optional VAE) to output with weights of enum_names()['type'][weight_type]:\n"
          "GGUF, or safetensors when output ends in '.safetensors'. Raises EngineError on failure.\n"
          "job.on_progress gets the engine's tensor-loading ticks (phase 'load'); cancel() has no effect.");

    using R = Request;
    nb::class_<R>(m, "Request", "One generation: prompts, size, sampling, img2img inputs, tiling and step cache.")
        .def(nb::init<>())
        .def_rw("prompt", &R::prompt)
        .def_rw("negative_prompt", &R::negative_prompt)
        .def_rw("init_image", &R::init_image, nb::arg("value").none(),
                "img2img input, uint8 (height, width, 3), or None for txt2img.")
        .def_rw("ref_images", &R::ref_images, "Reference images (edit models), each uint8 (height, width, 3).")
        .def_rw("mask", &R::mask, nb::arg("value").none(),
                "Inpainting mask, uint8 (height, width): 255 repaints, 0 keeps init_image; None = repaint all.")
        .def_rw("control_image", &R::control_image, nb::arg("value").none(),
                "ControlNet condition image, uint8 (height, width, 3), or None.")
        .RW(R, "control_strength", raw.control_strength)
        .RW(R, "hires", raw.hires.enabled, "Run the engine's hires fix (a second, larger sampling pass).")
        .RW(R, "hires_upscaler", raw.hires.upscaler, "index into the engine's sd_hires_upscaler_t (1 = Latent).")
        .def_rw("hires_model_path", &R::hires_model_path, "ESRGAN model of the 'Model' hires upscaler.")
        .RW(R, "hires_scale", raw.hires.scale)
        .RW(R, "hires_width", raw.hires.target_width, "0 = width * hires_scale.")
        .RW(R, "hires_height", raw.hires.target_height, "0 = height * hires_scale.")
        .RW(R, "hires_steps", raw.hires.steps, "0 = the first pass's steps.")
        .RW(R, "hires_strength", raw.hires.denoising_strength)
        .RW(R, "hires_tile_size", raw.hires.tile_size)
        .def_prop_rw("loras", &get_loras<R>, &set_loras<R>, "(path, weight) pairs; paths as str or bytes.")
        .RW(R, "clip_skip", raw.clip_skip)
        .RW(R, "width", raw.width)
        .RW(R, "height", raw.height)
        .RW(R, "steps", raw.sample.steps)
        .RW(R, "cfg_scale", raw.sample.guidance.txt_cfg)
        .RW(R, "img_cfg_scale", raw.sample.guidance.img_cfg)
        .RW(R, "guidance", raw.sample.guidance.distilled, "Distilled guidance (FLUX).")
        .RW(R, "slg_scale", raw.sample.guidance.slg.scale, "Skip-layer guidance scale; 0 = off (SD3 and FLUX DiTs).")
        .def_rw("skip_layers", &R::skip_layers, "Block indices the skip-layer guidance pass leaves out.")
        .RW(R, "skip_layer_start", raw.sample.guidance.slg.start, "Where SLG starts, as a fraction of the schedule.")
        .RW(R, "skip_layer_end", raw.sample.guidance.slg.end, "Where SLG stops, as a fraction of the schedule.")
        .def_rw("sigmas", &R::sigmas, "A custom noise schedule (steps + 1 values); empty = the scheduler's.")
        .RW(R, "sample_method", raw.sample.method, ENUM_DOC("sample_method"))
        .RW(R, "scheduler", raw.sample.scheduler, ENUM_DOC("scheduler"))
        .RW(R, "eta", raw.sample.eta)
        .RW(R, "shifted_timestep", raw.sample.shifted_timestep, "NitroFusion timestep shift; 0 = off (SDXL only).")
        .RW(R, "flow_shift", raw.sample.flow_shift, "Flow-model schedule shift; inf = the model's own.")
        .RW(R, "strength", raw.strength)
        .RW(R, "seed", raw.seed)
        .RW(R, "batch_count", raw.batch_count)
        .RW(R, "auto_resize_ref_image", raw.auto_resize_ref_image)
        .RW(R, "increase_ref_index", raw.increase_ref_index)
        .RW(R, "vae_tiling", raw.vae_tiling.enabled)
        .RW(R, "vae_tile_x", raw.vae_tiling.tile_x)
        .RW(R, "vae_tile_y", raw.vae_tiling.tile_y)
        .RW(R, "vae_tile_overlap", raw.vae_tiling.overlap)
        .RW(R, "cache_mode", raw.cache.mode)
        .RW(R, "cache_reuse_threshold", raw.cache.reuse_threshold)
        .RW(R, "cache_start_percent", raw.cache.start_percent)
        .RW(R, "cache_end_percent", raw.cache.end_percent)
        .RW(R, "cache_error_decay_rate", raw.cache.error_decay_rate)
        .RW(R, "cache_relative_threshold", raw.cache.relative_threshold)
        .RW(R, "cache_fn_compute_blocks", raw.cache.fn_compute_blocks)
        .RW(R, "cache_bn_compute_blocks", raw.cache.bn_compute_blocks)
        .RW(R, "cache_residual_diff_threshold", raw.cache.residual_diff_threshold)
        .RW(R, "cache_max_warmup_steps", raw.cache.max_warmup_steps)
        .RW(R, "cache_max_cached_steps", raw.cache.max_cached_steps)
        .RW(R, "cache_max_continuous_cached_steps", raw.cache.max_continuous_cached_steps)
        .RW(R, "cache_taylorseer_derivatives", raw.cache.taylorseer_derivatives)
        .RW(R, "cache_taylorseer_skip_interval", raw.cache.taylorseer_skip_interval)
        .RW(R, "cache_spectrum_warmup_steps", raw.cache.spectrum_warmup_steps)
        .def_rw("pm_id_images", &R::pm_id_images, "PhotoMaker ID images, each uint8 (height, width, 3).")
        .def_rw("pm_id_embed_path", &R::pm_id_embed_path, "PhotoMaker v2 ID embeddings file (id_embeds.bin).")
        .RW(R, "pm_style_strength", raw.photo_maker.style_strength, "PhotoMaker style strength, 0-100.");

    using V = VideoRequest;
    nb::class_<V>(m, "VideoRequest", "One video: prompts, size, frames, sampling (and a high-noise pass), inputs.")
        .def(nb::init<>())
        .def_rw("prompt", &V::prompt)
        .def_rw("negative_prompt", &V::negative_prompt)
        .def_rw("init_image", &V::init_image, nb::arg("value").none(),
                "First frame (image-to-video), uint8 (height, width, 3), or None.")
        .def_rw("end_image", &V::end_image, nb::arg("value").none(),
                "Last frame (first/last-frame models), uint8 (height, width, 3), or None.")
        .def_rw("control_frames", &V::control_frames, "VACE control video, frames uint8 (height, width, 3).")
        .def_prop_rw("loras", &get_loras<V>, &set_loras<V>, "(path, weight) pairs; paths as str or bytes.")
        .RW(V, "clip_skip", raw.clip_skip)
        .RW(V, "width", raw.width)
        .RW(V, "height", raw.height)
        .RW(V, "video_frames", raw.video_frames, "Frames asked for; the engine makes 4k+1.")
        .RW(V, "steps", raw.sample.steps)
        .RW(V, "cfg_scale", raw.sample.guidance.txt_cfg)
        .RW(V, "guidance", raw.sample.guidance.distilled)
        .RW(V, "sample_method", raw.sample.method, ENUM_DOC("sample_method"))
        .RW(V, "scheduler", raw.sample.scheduler, ENUM_DOC("scheduler"))
        .RW(V, "eta", raw.sample.eta)
        .RW(V, "flow_shift", raw.sample.flow_shift, "Flow-model schedule shift; inf = the model's own.")
        .RW(V, "high_noise_steps", raw.high_noise_sample.steps, "Steps of the high-noise model; -1 = the engine's split.")
        .RW(V, "high_noise_cfg_scale", raw.high_noise_sample.guidance.txt_cfg)
        .RW(V, "high_noise_sample_method", raw.high_noise_sample.method, ENUM_DOC("sample_method"))
        .RW(V, "high_noise_scheduler", raw.high_noise_sample.scheduler, ENUM_DOC("scheduler"))
        .RW(V, "high_noise_eta", raw.high_noise_sample.eta)
        .RW(V, "high_noise_flow_shift", raw.high_noise_sample.flow_shift)
        .RW(V, "moe_boundary", raw.moe_boundary, "Where the high-noise model hands over (fraction of the timesteps).")
        .RW(V, "strength", raw.strength)
        .RW(V, "seed", raw.seed)
        .RW(V, "vace_strength", raw.vace_strength)
        .RW(V, "vae_tiling", raw.vae_tiling.enabled)
        .RW(V, "vae_tile_x", raw.vae_tiling.tile_x)
        .RW(V, "vae_tile_y", raw.vae_tiling.tile_y)
        .RW(V, "vae_tile_overlap", raw.vae_tiling.overlap)
        .RW(V, "cache_mode", raw.cache.mode)
        .RW(V, "cache_reuse_threshold", raw.cache.reuse_threshold)
        .RW(V, "cache_start_percent", raw.cache.start_percent)
        .RW(V, "cache_end_percent", raw.cache.end_percent);

    nb::class_<Context>(m, "Context", "A loaded model (the engine's sd_ctx); generate() runs one Request.")
        .def(nb::init<ContextConfig&, Job&>(), "config"_a, "job"_a,
             "Load the model files of config; raises EngineError on failure, Cancelled if job was cancelled.")
        .def("generate", &Context::generate, "request"_a, "job"_a,
             "Generate request.batch_count images, each uint8 (height, width, 3); raises Cancelled or EngineError.")
        .def("generate_video", &Context::generate_video, "request"_a, "job"_a,
             "Generate one video: its frames, each uint8 (height, width, 3); raises Cancelled or EngineError.")
        .def_prop_ro("supports_video", &Context::supports_video, "Whether the model makes videos (Wan, SVD).")
        .def("default_sample_method", &Context::default_sample_method, "The engine's default sampler for this model.")
        .def("default_scheduler", &Context::default_scheduler, "sample_method"_a = "",
             "The engine's default scheduler for this model with sample_method ('' = its default sampler).")
        .def("close", &Context::close, "Free the model now (also done when the object is collected).")
        .def_prop_ro("closed", &Context::closed);

    nb::class_<Upscaler>(m, "Upscaler", "A loaded ESRGAN upscaler.")
        .def(nb::init<nb::handle, int, int, bool, bool, Job&>(), "path"_a, "threads"_a, "tile_size"_a,
             "offload_to_cpu"_a, "direct"_a, "job"_a,
             nb::sig("def __init__(self, path: str | bytes, threads: int, tile_size: int, "
                     "offload_to_cpu: bool, direct: bool, job: Job) -> None"),
             "Load the upscaler at path (str or bytes); raises EngineError on failure.")
        .def("upscale", &Upscaler::upscale, "image"_a, "factor"_a, "job"_a,
             "Upscale a uint8 (height, width, 3) image by factor; returns the larger image.")
        .def("close", &Upscaler::close, "Free the upscaler now.")
        .def_prop_ro("factor", &Upscaler::factor, "The model's native scale factor (e.g. 4).")
        .def_prop_ro("closed", &Upscaler::closed);
}
