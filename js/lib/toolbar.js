// The tools above the canvas: the query bar (with a count of matches), lasso or box
// selection, a switch per split, and the outline of the dots the canvas misplaces.

import { element } from "./dom.js";

export function createToolbar(parent, { onQuery, onSplits, onMisplaced }) {
  const bar = element("div", "nbdebug-toolbar", parent);
  const form = element("div", "nbdebug-query", bar);
  const input = element("input", "nbdebug-query-input", form);
  input.type = "text";
  input.placeholder = "query: label=3 mispredicted forgetting>=3";
  input.title =
    "Highlight samples: label=, predicted= (at this epoch), mispredicted, split=, indices=1,2, or an " +
    "attribute comparison such as forgetting>=3; terms separated by spaces must all hold. Empty: clear.";
  input.setAttribute("aria-label", "query");
  const count = element("span", "nbdebug-query-count", form);
  // Enter runs the query. Handled here: the notebook takes Enter before a form would see it.
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    event.stopPropagation();
    onQuery(input.value.trim());
  });

  const box = element("label", "nbdebug-box-mode", bar);
  const boxInput = element("input", "", box);
  boxInput.type = "checkbox";
  element("span", "", box).textContent = "box";
  box.title = "drag a rectangle to select, instead of a lasso";

  const splits = element("span", "nbdebug-splits", bar);
  let hidden = new Set();

  const misplaced = element("label", "nbdebug-misplaced", bar);
  const misplacedInput = element("input", "", misplaced);
  misplacedInput.type = "checkbox";
  element("span", "", misplaced).textContent = "misplaced";
  misplaced.title =
    "Outline the dots this frame misplaces: orange, the territory under the dot is not the model's " +
    "prediction; purple, it kept fewer than 2 of its 15 nearest neighbours on the canvas.";
  misplacedInput.addEventListener("change", () => onMisplaced(misplacedInput.checked));

  return {
    box: () => boxInput.checked,
    setQuery(text, matches) {
      if (document.activeElement !== input) input.value = text;
      count.textContent = matches === null ? "" : `${matches} match${matches === 1 ? "" : "es"}`;
    },
    // One switch per split that has samples; `names` come from Python, shown as text.
    setSplits(names, present, hiddenNames) {
      hidden = new Set(hiddenNames);
      splits.replaceChildren();
      names.forEach((name, code) => {
        if (!present[code]) return;
        const label = element("label", "nbdebug-split", splits);
        const check = element("input", "", label);
        check.type = "checkbox";
        check.checked = !hidden.has(name);
        check.dataset.split = name;
        element("span", "", label).textContent = name;
        check.addEventListener("change", () => {
          if (check.checked) hidden.delete(name);
          else hidden.add(name);
          onSplits([...hidden]);
        });
      });
    },
    setMisplaced(on, note) {
      misplacedInput.checked = on;
      misplaced.lastChild.textContent = note ? `misplaced (${note})` : "misplaced";
    },
  };
}
