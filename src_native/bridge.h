// Routes the engine's process-global callbacks to the one job that is running, and
// serialises engine calls in arrival order (see CANCEL.md for why unwinding is safe).
#pragma once

#include <nanobind/nanobind.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "library.h"

namespace nb = nanobind;

namespace qvac {

enum class Phase : int { Load = 0, Encode = 1, Sample = 2, Decode = 3, Upscale = 4 };
const char* phase_name(Phase p);

// Thrown from the progress callback to unwind out of the sampling loop.
struct CancelUnwind {};

// Raised to Python when a job stopped because it was cancelled.
struct Cancelled : std::exception {
    const char* what() const noexcept override { return "the job was cancelled"; }
};

// What one engine call reports to, and how it can be stopped.
class Job {
public:
    nb::object on_progress;  // (step, total, seconds_per_step, phase) -> None
    nb::object on_preview;   // (step, width, height, channels, bytes) -> None
    int preview_interval = 1;

    void cancel() { cancel_requested.store(true); }
    bool cancelled() const { return cancel_requested.load(); }

    // Engine-side state, touched only while this job holds the engine.
    std::atomic<bool> cancel_requested{false};
    std::atomic<int> phase{static_cast<int>(Phase::Load)};
    std::atomic<int> batch_index{0};
    // With quiet_load, load progress is only stored (packed step << 32 | total) for a Python thread to
    // read: the engine's loader then never waits for the GIL, which an import elsewhere may hold.
    bool quiet_load = false;
    std::atomic<int64_t> load_progress{-1};
    std::unique_ptr<nb::python_error> callback_error;  // first exception a callback raised
    std::vector<std::string> errors;                    // the engine's error log lines

    // Per-phase timing: (phase, steady-clock ns) at each phase change, so the worker can
    // report conditioning, denoising and decoding times. Guarded by the log mutex.
    std::vector<std::pair<int, int64_t>> phase_marks;
    void mark_phase(Phase p);
    void mark_end();  // the engine call returned
};

// FIFO engine lock: holders run one at a time, in the order they asked.
class EngineTurn {
public:
    explicit EngineTurn(Job* job);  // call without the GIL
    ~EngineTurn();
    EngineTurn(const EngineTurn&) = delete;
    EngineTurn& operator=(const EngineTurn&) = delete;

private:
    Job* job_;
};

// Installs the log callback (once per process) that queues lines for Python.
void install_log_callback();
void set_log_handler(nb::object handler);
// Hands queued engine log lines to the Python handler; needs the GIL.
void flush_logs();

// After an engine call, with the GIL held: raise what the job's callbacks raised.
void rethrow_callback_error(Job& job);

}  // namespace qvac
