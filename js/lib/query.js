// The query bar's text answered in the page when it needs only what the page holds (labels,
// splits, the shown epoch's predictions), so the highlight follows Enter at once: a message
// from the kernel takes about 45 ms to arrive here (median, headless Chromium on 2 cores).
// The kernel answers every query too (nbdebug/query.py, the reference); its answer replaces
// this one. Anything this reader is not sure of (quotes, attribute comparisons, names it does
// not know) is left to the kernel: answerLocally returns null.

const SIMPLE_KEYS = new Set(["label", "predicted", "mispredicted", "split", "indices"]);

// The terms of `text` as [key, value] pairs (value null for a bare "mispredicted"), or null.
export function simpleTerms(text) {
  if (/["'\\]/.test(text)) return null;
  const words = text
    .replace(/([<>=!]+)/g, " $1 ")
    .split(/\s+/)
    .filter(Boolean);
  const terms = [];
  for (let k = 0; k < words.length; ) {
    const word = words[k];
    if (words[k + 1] === "=") {
      if (!SIMPLE_KEYS.has(word) || k + 2 >= words.length || /^[<>=!]+$/.test(words[k + 2])) return null;
      terms.push([word, words[k + 2]]);
      k += 3;
    } else if (word === "mispredicted" && !/^[<>=!]+$/.test(words[k + 1] || "")) {
      terms.push(["mispredicted", null]);
      k += 1;
    } else if (word.toLowerCase() === "and" || word === "&") {
      k += 1;
    } else {
      return null; // an attribute comparison or a typo: the kernel's to answer or explain
    }
  }
  return terms;
}

// Class indices of a comma list, as nbdebug.query reads them (a name first, then an index;
// "none" and -1 only where `unlabeled`); null if any is not one.
function classIndices(value, classes, unlabeled) {
  const found = [];
  for (const item of value.split(",").filter(Boolean)) {
    let index = classes.indexOf(item);
    if (index < 0 && unlabeled && item === "none") index = -1;
    else if (index < 0 && /^-?\d+$/.test(item)) index = Number(item);
    if (!(index >= 0 && index < classes.length) && !(unlabeled && index === -1)) return null;
    found.push(index);
  }
  return found.length ? new Set(found) : null;
}

// The ascending indices matching `text` over `data` ({n, labels, splits, splitNames, classes,
// predicted}: the predictions of the epoch the kernel will query, or null), or null when the
// kernel must answer. An empty text matches nothing: the highlight is cleared.
export function answerLocally(text, data) {
  const terms = simpleTerms(text);
  if (terms === null) return null;
  if (!terms.length) return { highlighting: false, matches: new Uint32Array(0) };
  const seen = new Set();
  const tests = [];
  for (const [key, value] of terms) {
    if (seen.has(key)) return null; // the kernel says a key given twice is an error
    seen.add(key);
    if (key === "label") {
      const wanted = classIndices(value, data.classes, true);
      if (!wanted) return null;
      tests.push((i) => wanted.has(data.labels[i]));
    } else if (key === "predicted" || key === "mispredicted") {
      if (!data.predicted) return null;
      if (key === "predicted") {
        const wanted = classIndices(value, data.classes, false);
        if (!wanted) return null;
        tests.push((i) => wanted.has(data.predicted[i]));
      } else {
        const flag = value === null ? "true" : value.toLowerCase();
        if (flag !== "true" && flag !== "false") return null;
        const wrong = flag === "true";
        tests.push((i) => data.labels[i] >= 0 && (data.predicted[i] !== data.labels[i]) === wrong);
      }
    } else if (key === "split") {
      const codes = value.split(",").map((name) => data.splitNames.indexOf(name));
      if (!codes.length || codes.some((code) => code < 0)) return null;
      tests.push((i) => codes.includes(data.splits[i]));
    } else {
      const parts = value.split(",").filter(Boolean);
      if (!parts.every((part) => /^\d+$/.test(part) && Number(part) < data.n)) return null;
      const wanted = new Set(parts.map(Number));
      tests.push((i) => wanted.has(i));
    }
  }
  const matches = [];
  for (let i = 0; i < data.n; i++) if (tests.every((test) => test(i))) matches.push(i);
  return { highlighting: true, matches: Uint32Array.from(matches) };
}
