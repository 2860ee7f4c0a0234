// Small DOM helpers shared by the widgets.

export function element(tag, className, parent) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (parent) parent.appendChild(el);
  return el;
}

// anywidget hands binary traits over as DataView; view the same memory, copying only if misaligned.
export function asTyped(view, Type) {
  if (!view || view.byteLength === 0) return new Type(0);
  const offset = view.byteOffset;
  if (offset % Type.BYTES_PER_ELEMENT === 0) {
    return new Type(view.buffer, offset, view.byteLength / Type.BYTES_PER_ELEMENT);
  }
  return new Type(view.buffer.slice(offset, offset + view.byteLength));
}
