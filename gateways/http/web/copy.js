// Copy buttons (a message, a code block): the clipboard, or a selection to copy by hand, and a
// visible state. Labels are drawn by CSS, so a selected and copied answer has no "Copy" in it.

const SHOWN = 2000; // ms the "Copied" state stays

// A button that copies `text()`; `selectable()` is what to select where there is no clipboard API.
export function copyButton(label, text, selectable, className = "copy") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.addEventListener("click", () => copy(button, label, text(), selectable()));
  return button;
}

async function copy(button, label, text, selectable) {
  let done = false;
  try {
    await navigator.clipboard.writeText(text);
    done = true;
  } catch {
    // No clipboard API on a plain-http address other than localhost: select it for Ctrl+C instead.
    getSelection().selectAllChildren(selectable);
    try {
      done = document.execCommand("copy");
    } catch {
      done = false;
    }
  }
  button.classList.remove("copied", "selected");
  button.classList.add(done ? "copied" : "selected");
  button.setAttribute("aria-label", done ? "Copied" : "Selected: press Ctrl+C to copy");
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => {
    button.classList.remove("copied", "selected");
    button.setAttribute("aria-label", label);
  }, SHOWN);
}
