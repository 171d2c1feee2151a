// A stand-in for anywidget's model: get/set/on/off/send/save_changes, plus helpers to act as the kernel.
export function mockModel(initial = {}) {
  const state = { ...initial };
  const listeners = new Map();
  const model = {
    state,
    sent: [],
    saves: 0,
    get: (key) => state[key],
    set(key, value) {
      state[key] = value;
      model.emit(`change:${key}`); // Backbone fires local change events on set
    },
    on(name, fn) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
    },
    off(name, fn) {
      listeners.get(name)?.delete(fn);
    },
    send(content, callbacks, buffers) {
      model.sent.push({ content, buffers: buffers || [] });
    },
    save_changes() {
      model.saves += 1;
    },
    emit(name, ...args) {
      for (const fn of listeners.get(name) || []) fn(...args);
    },
    /** The kernel changes a trait. */
    update(key, value) {
      state[key] = value;
      model.emit(`change:${key}`);
    },
    /** The kernel sends a custom message. */
    message(content, buffers = []) {
      model.emit("msg:custom", content, buffers);
    },
    listenerCount: () => [...listeners.values()].reduce((n, s) => n + s.size, 0),
    sentOfType: (type) => model.sent.filter((m) => m.content.type === type),
  };
  return model;
}

/** Bytes that look like a PNG (content is irrelevant to the front-end). */
export function fakeImage(n = 16) {
  const bytes = new Uint8Array(n);
  bytes.set([0x89, 0x50, 0x4e, 0x47]);
  return new DataView(bytes.buffer);
}

export function entry(id, extra = {}) {
  return {
    id,
    thumb: fakeImage(),
    width: 64,
    height: 64,
    seed: 42,
    params: { prompt: "a red boat", seed: 42, steps: 2, sampling_method: "euler_a" },
    kind: "diffusion",
    ...extra,
  };
}

export const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
