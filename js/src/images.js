// Full-size images come from the kernel on request: {type: "image", id} -> reply with the PNG as a buffer.
import { DEAD_TEXT } from "./connection.js";
import { toBlob } from "./util.js";

/**
 * connection (optional, from connection.js): a dead kernel-side object fails a request at once
 * with a clear message instead of leaving it waiting forever.
 */
export function createImageFetcher(model, connection = null) {
  const blobs = new Map(); // id -> Promise<Blob>
  const waiting = new Map(); // id -> {resolve, reject}
  const send = (content) => (connection ? connection.send(content) : (model.send(content), true));

  function get(id) {
    if (!blobs.has(id)) {
      blobs.set(
        id,
        new Promise((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          if (!send({ type: "image", id })) fail(DEAD_TEXT);
        }),
      );
    }
    return blobs.get(id);
  }

  /** Reject every pending request (the kernel-side object is gone); later requests ask again. */
  function fail(message) {
    for (const [id, pending] of waiting) {
      blobs.delete(id);
      pending.reject(new Error(message));
    }
    waiting.clear();
  }

  /** Feed a custom message; true if it was an image reply. */
  function handle(msg, buffers) {
    if (!msg || msg.type !== "image") return false;
    const pending = waiting.get(msg.id);
    if (!pending) return true;
    waiting.delete(msg.id);
    if (msg.missing || !buffers || !buffers.length) {
      blobs.delete(msg.id);
      pending.reject(new Error(`image ${msg.id} is no longer in the kernel`));
    } else {
      pending.resolve(toBlob(buffers[0]));
    }
    return true;
  }

  return { get, handle, fail, pending: () => waiting.size };
}

/** Save a Blob as a file through a temporary link. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function pngName(entry) {
  const seed = entry.seed !== null && entry.seed !== undefined ? `-${entry.seed}` : "";
  return `qvac_nb${seed}-${entry.id}.png`;
}

/** Feed a custom message; true if it was the kernel's "Download all" zip, which is then saved. */
export function handleZip(msg, buffers) {
  if (!msg || msg.type !== "zip") return false;
  if (buffers && buffers.length) saveBlob(toBlob(buffers[0], "application/zip"), msg.name || "qvac_nb-images.zip");
  return true;
}
