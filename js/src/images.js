// Full-size images come from the kernel on request: {type: "image", id} -> reply with the PNG as a buffer.
import { toBlob } from "./util.js";

export function createImageFetcher(model) {
  const blobs = new Map(); // id -> Promise<Blob>
  const waiting = new Map(); // id -> {resolve, reject}

  function get(id) {
    if (!blobs.has(id)) {
      blobs.set(
        id,
        new Promise((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          model.send({ type: "image", id });
        }),
      );
    }
    return blobs.get(id);
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

  return { get, handle, pending: () => waiting.size };
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
