"""Engine worker processes: each loaded model runs `qvac_nb._engine` in a process of its own.

The kernel keeps the handles, the job queues and the progress streams; a worker only loads one
model and runs the requests it is sent. A crash, abort, out-of-memory kill or hang of the engine
then ends a worker, never the kernel, and unloading a model returns all of its memory at once.

    kernel                                    worker (a new python running qvac_nb.worker.server)
    ------                                    ------
    process.WorkerProcess  -- load ------->   server: opens the model (opening.open_model)
    runner.ModelRunner     -- diffusion -->   engine thread: engine_calls.run_diffusion
      (one thread a model)  <-- tick ------     progress, previews
                            <-- log -------     engine log lines
                            <-- result ----     PNG bytes, one message per image
                           -- cancel ---->    stops sampling within a step
    (kill after a grace period when the engine cannot stop: decode, upscale, load)

`protocol` names the messages; `process` spawns, talks to and ends a worker; `server` is the
worker's side; `opening` and `engine_calls` are the only code that touches the engine.
"""
