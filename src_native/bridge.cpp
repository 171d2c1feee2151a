#include "bridge.h"

#include <Python.h>

#include <cstring>
#include <deque>
#include <utility>

namespace qvac {
namespace {

std::mutex g_turn_mutex;
std::condition_variable g_turn_cv;
uint64_t g_next_ticket = 0;
uint64_t g_serving = 0;
Job* g_current = nullptr;  // the job holding the engine, read by the callbacks

std::mutex g_log_mutex;
std::deque<std::pair<int, std::string>> g_log_queue;
nb::object* g_log_handler = nullptr;  // leaked on purpose: outlives interpreter teardown order

// Lines that mark where generate_image is, so cancel only unwinds from sampling.
void track_phase(Job* job, const char* text) {
    if (std::strstr(text, "generating image: ") != nullptr) {
        job->mark_phase(Phase::Sample);
        int index = 0, count = 0;
        const char* p = std::strstr(text, "generating image: ") + std::strlen("generating image: ");
        if (std::sscanf(p, "%d/%d", &index, &count) == 2) job->batch_index.store(index - 1);
    } else if (std::strstr(text, "sampling completed") != nullptr || std::strstr(text, "- hires fix: ") != nullptr ||
               std::strstr(text, "- hires sampling ") != nullptr) {
        // also the hires fix's own work around its second sampling pass (enlarging, setting up)
        job->mark_phase(Phase::Encode);
        // The hires pass goes over the batch again: "hires fix: ..." before image 1, "hires sampling i/n
        // completed" after image i, so the next pass is image i (0-based).
        int done = 0, count = 0;
        const char* hires = std::strstr(text, "- hires sampling ");
        if (std::strstr(text, "- hires fix: ") != nullptr) {
            job->batch_index.store(0);
        } else if (hires != nullptr && std::sscanf(hires + std::strlen("- hires sampling "), "%d/%d", &done, &count) == 2
                   && done < count) {
            job->batch_index.store(done);
        }
    } else if (std::strstr(text, "- hires ") != nullptr && std::strstr(text, " upscale ") != nullptr) {
        // "hires <upscaler> [image] upscale WxH -> WxH": the enlarged image's sampling pass starts
        job->mark_phase(Phase::Sample);
    } else if (std::strstr(text, "decoding ") != nullptr && std::strstr(text, " latents") != nullptr) {
        job->mark_phase(Phase::Decode);
    } else if (std::strstr(text, "latent ") != nullptr && std::strstr(text, " decoded, taking ") != nullptr) {
        // one more decode mark as each latent is done: the spans between them are each image's decode
        job->mark_phase(Phase::Decode);
    } else if (std::strstr(text, "generate_video ") != nullptr && std::strstr(text, "completed") == nullptr) {
        // "generate_video WxHxF": the text is encoded, the (high-noise, then low-noise) sampling starts.
        // "sampling(high noise) completed" does not match "sampling completed": both passes are sampling.
        job->mark_phase(Phase::Sample);
    } else if (std::strstr(text, "generating latent video completed") != nullptr) {
        job->mark_phase(Phase::Decode);
    }
}

void on_log(sdabi::Enum level, const char* text, void*) {
    if (text == nullptr) return;
    std::lock_guard<std::mutex> lock(g_log_mutex);
    if (Job* job = g_current) {
        track_phase(job, text);
        if (level >= 3 && job->errors.size() < 32) job->errors.emplace_back(text);
    }
    if (g_log_queue.size() < 100000) g_log_queue.emplace_back(level, text);
}

void capture_python_error(Job* job, nb::python_error&& e) {
    if (!job->callback_error) job->callback_error = std::make_unique<nb::python_error>(std::move(e));
    job->cancel_requested.store(true);
}

void on_progress(int step, int steps, float seconds, void*) {
    Job* job = g_current;
    if (job == nullptr) return;
    const Phase phase = static_cast<Phase>(job->phase.load());
    if (phase == Phase::Load && job->quiet_load) {
        job->load_progress.store((int64_t(step) << 32) | uint32_t(steps));
        return;
    }
    try {
        nb::gil_scoped_acquire gil;
        flush_logs();
        if (job->on_progress.is_valid() && !job->on_progress.is_none() && !job->callback_error) {
            try {
                job->on_progress(step, steps, seconds, phase_name(phase));
            } catch (nb::python_error& e) {
                capture_python_error(job, std::move(e));
            }
        }
        // Ctrl-C in a notebook or shell arrives here when the engine runs on the main thread.
        if (PyErr_CheckSignals() != 0) {
            capture_python_error(job, nb::python_error());
        }
    } catch (const std::exception& e) {
        // Nothing but CancelUnwind may leave this callback: during loading the engine has
        // worker threads that an escaping exception would abandon (std::terminate).
        std::lock_guard<std::mutex> lock(g_log_mutex);
        job->errors.emplace_back(std::string("progress callback failed: ") + e.what());
        job->cancel_requested.store(true);
    }
    // Only the sampling loop is unwound: see CANCEL.md.
    if (phase == Phase::Sample && job->cancel_requested.load()) throw CancelUnwind{};
}

void on_preview(int step, int frame_count, sdabi::Image* frames, bool, void*) {
    Job* job = g_current;
    if (job == nullptr || frame_count < 1 || frames == nullptr || frames[0].data == nullptr) return;
    const sdabi::Image& f = frames[0];
    try {
        nb::gil_scoped_acquire gil;
        if (!job->on_preview.is_valid() || job->on_preview.is_none() || job->callback_error) return;
        try {
            nb::bytes pixels(reinterpret_cast<const char*>(f.data), size_t(f.width) * f.height * f.channels);
            job->on_preview(step, f.width, f.height, f.channels, pixels);
        } catch (nb::python_error& e) {
            capture_python_error(job, std::move(e));
        }
    } catch (const std::exception&) {
        job->cancel_requested.store(true);  // see on_progress: nothing may escape a callback
    }
}

}  // namespace

void Job::mark_phase(Phase p) {
    phase.store(static_cast<int>(p));
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    if (phase_marks.size() < 4096) {
        phase_marks.emplace_back(static_cast<int>(p), std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
    }
}

void Job::mark_end() {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    phase_marks.emplace_back(-1, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
}

const char* phase_name(Phase p) {
    switch (p) {
        case Phase::Load: return "load";
        case Phase::Encode: return "encode";
        case Phase::Sample: return "sample";
        case Phase::Decode: return "decode";
        case Phase::Upscale: return "upscale";
    }
    return "unknown";
}

EngineTurn::EngineTurn(Job* job) : job_(job) {
    std::unique_lock<std::mutex> lock(g_turn_mutex);
    const uint64_t ticket = g_next_ticket++;
    g_turn_cv.wait(lock, [ticket] { return g_serving == ticket; });
    {
        std::lock_guard<std::mutex> log_lock(g_log_mutex);
        g_current = job;
    }
    const sdabi::Api& a = sdabi::api();
    a.set_progress_callback(&on_progress, nullptr);
    const bool preview = job->on_preview.is_valid() && !job->on_preview.is_none();
    a.set_preview_callback(preview ? &on_preview : nullptr, preview ? sdabi::kPreviewProj : 0,
                           job->preview_interval, true, false, nullptr);
}

EngineTurn::~EngineTurn() {
    const sdabi::Api& a = sdabi::api();
    a.set_progress_callback(nullptr, nullptr);
    a.set_preview_callback(nullptr, 0, 1, false, false, nullptr);
    {
        std::lock_guard<std::mutex> log_lock(g_log_mutex);
        g_current = nullptr;
    }
    std::lock_guard<std::mutex> lock(g_turn_mutex);
    ++g_serving;
    g_turn_cv.notify_all();
}

void install_log_callback() { sdabi::api().set_log_callback(&on_log, nullptr); }

void set_log_handler(nb::object handler) {
    if (g_log_handler == nullptr) g_log_handler = new nb::object();
    *g_log_handler = std::move(handler);
}

void flush_logs() {
    std::deque<std::pair<int, std::string>> lines;
    {
        std::lock_guard<std::mutex> lock(g_log_mutex);
        lines.swap(g_log_queue);
    }
    if (g_log_handler == nullptr || !g_log_handler->is_valid() || g_log_handler->is_none()) return;
    for (auto& [level, text] : lines) {
        try {
            // Bytes, not str: engine lines can hold invalid UTF-8 (tokens, paths).
            (*g_log_handler)(level, nb::bytes(text.data(), text.size()));
        } catch (nb::python_error& e) {
            e.discard_as_unraisable("qvac_nb engine log handler");
        } catch (const std::exception&) {
        }
    }
}

void rethrow_callback_error(Job& job) {
    if (job.callback_error) {
        std::unique_ptr<nb::python_error> err = std::move(job.callback_error);
        err->restore();
        throw nb::python_error();
    }
}

}  // namespace qvac
