// @ts-check
// Full-size images come from the kernel on request: {type: "image", id} -> reply with the PNG as a buffer.
import { DEAD_TEXT } from "./connection.js";
import { IMAGE, ZIP } from "./messages.js";
import { h, toBlob } from "./util.js";

/** @typedef {import("./types.js").GalleryEntry} GalleryEntry */
/** @typedef {import("./types.js").InMessage} InMessage */
/** @typedef {import("./types.js").OutMessage<typeof IMAGE>} ImageRequest */

/**
 * What createImageFetcher returns: get(id) fetches a file by its kernel-side id (once), handle() takes the replies.
 * @typedef {object} ImageFetcher
 * @property {(id: string) => Promise<Blob>} get
 * @property {(msg: InMessage, buffers?: import("./types.js").Bytes[]) => boolean} handle
 * @property {(message: string) => void} fail
 * @property {() => number} pending
 */

/**
 * connection (optional, from connection.js): a dead kernel-side object fails a request at once
 * with a clear message instead of leaving it waiting forever.
 * @param {{send: (content: ImageRequest) => unknown}} model
 * @param {{send: (content: ImageRequest) => boolean} | null} [connection]
 * @returns {ImageFetcher}
 */
export function createImageFetcher(model, connection = null) {
  /** @type {Map<string, Promise<Blob>>} */
  const blobs = new Map();
  /** @type {Map<string, {resolve: (blob: Blob) => void, reject: (err: Error) => void}>} */
  const waiting = new Map();
  /** @param {ImageRequest} content */
  const send = (content) => (connection ? connection.send(content) : (model.send(content), true));

  /** @param {string} id */
  function get(id) {
    if (!blobs.has(id)) {
      blobs.set(
        id,
        new Promise((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          if (!send({ type: IMAGE, id })) fail(DEAD_TEXT);
        }),
      );
    }
    return blobs.get(id);
  }

  /** Reject every pending request (the kernel-side object is gone); later requests ask again. @param {string} message */
  function fail(message) {
    for (const [id, pending] of waiting) {
      blobs.delete(id);
      pending.reject(new Error(message));
    }
    waiting.clear();
  }

  /**
   * Feed a custom message; true if it was an image reply.
   * @param {InMessage} msg
   * @param {import("./types.js").Bytes[]} [buffers]
   */
  function handle(msg, buffers) {
    if (!msg || msg.type !== IMAGE) return false;
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

/** Save a Blob as a file through a temporary link. @param {Blob} blob @param {string} filename */
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

/** The file a download of this entry saves: a video's MP4/WebP, else the PNG. @param {GalleryEntry} entry */
export function fileName(entry) {
  if (!entry.video) return pngName(entry);
  if (entry.video_file) return entry.video_file;
  const seed = entry.seed !== null && entry.seed !== undefined ? `-${entry.seed}` : "";
  return `qvac_nb${seed}-${entry.video}.${entry.format || "mp4"}`;
}

/** The kernel-side id of the entry's file: the video itself for a video (its `id` is its first frame). @param {GalleryEntry} entry */
export function fileId(entry) {
  return entry.video || entry.id;
}

/**
 * The entry's fetched bytes as a Blob of the right type (a video's bytes come untyped).
 * @param {GalleryEntry} entry
 * @param {Blob} blob
 * @returns {Blob}
 */
export function typedBlob(entry, blob) {
  return entry.video ? new Blob([blob], { type: entry.mime || "video/mp4" }) : blob;
}

/**
 * A player for a video entry's file at `url`: a looping, muted <video> for an MP4 (`poster`: its first
 * frame), an <img> for an animated WebP (browsers animate it themselves).
 * fetch(id): a Promise of the kernel's file `id`; where the MP4 cannot play (a browser without H.264),
 * the player is replaced by the entry's animated WebP fetched with it.
 * @param {GalleryEntry} entry
 * @param {string} url
 * @param {{cls?: string, poster?: string, fetch?: ((id: string) => Promise<Blob>) | null}} [options]
 * @returns {HTMLVideoElement | HTMLImageElement}
 */
export function videoPlayer(entry, url, { cls, poster = "", fetch = null } = {}) {
  const size = { width: entry.width, height: entry.height };
  if (entry.format === "webp") return h("img", { class: cls, src: url, ...size, alt: "animated WebP" });
  const player = h("video", { class: cls, src: url, poster, ...size, controls: "", loop: "", muted: "", autoplay: "", playsinline: "" });
  player.muted = true; // the attribute alone does not mute: autoplay needs the property
  if (fetch && entry.webp) {
    player.addEventListener(
      "error",
      () =>
        fetch(entry.webp).then(
          (blob) => {
            const webp = URL.createObjectURL(new Blob([blob], { type: "image/webp" }));
            const img = h("img", { class: cls, src: webp, ...size, alt: "animated WebP (this browser cannot play the MP4)" });
            if (player.isConnected) player.replaceWith(img);
          },
          () => {},
        ),
      { once: true },
    );
  }
  return player;
}

/** The file name a download of the entry's PNG saves. @param {GalleryEntry} entry */
export function pngName(entry) {
  const seed = entry.seed !== null && entry.seed !== undefined ? `-${entry.seed}` : "";
  return `qvac_nb${seed}-${entry.id}.png`;
}

/**
 * Feed a custom message; true if it was the kernel's "Download all" zip, which is then saved.
 * @param {InMessage} msg
 * @param {import("./types.js").Bytes[]} [buffers]
 */
export function handleZip(msg, buffers) {
  if (!msg || msg.type !== ZIP) return false;
  if (buffers && buffers.length) saveBlob(toBlob(buffers[0], "application/zip"), msg.name || "qvac_nb-images.zip");
  return true;
}
