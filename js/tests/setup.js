// jsdom has no object URLs: hand out fake ones so image code can run.
let next = 0;
URL.createObjectURL = (blob) => {
  next += 1;
  const url = `blob:mock/${next}`;
  URL.__blobs = URL.__blobs || new Map();
  URL.__blobs.set(url, blob);
  return url;
};
URL.revokeObjectURL = (url) => {
  if (URL.__blobs) URL.__blobs.delete(url);
};
