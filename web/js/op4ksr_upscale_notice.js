// Shows the text OP4KSR_Upscale returns (ui "text") on the node: the settings its OP4KSR weights carry, or a
// warning that the model is plain FLUX.1 (soft results) with what to do instead. The frontend shows ui "text"
// only on its own Preview Any node, hence this (same pattern as inspect_artifacts.js).
import { app } from "../../../scripts/app.js"; // served at /extensions/<pack>/js/

const NODE_ID = "OP4KSR_Upscale";
const WIDGET = "notice";

function noticeWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  const box = document.createElement("textarea");
  box.readOnly = true;
  box.className = "comfy-multiline-input";
  box.placeholder = "Queue the workflow: the settings used (or a warning) appear here.";
  box.dataset.sr4k = "op4ksr-notice";
  const widget = node.addDOMWidget(WIDGET, "sr4k_notice", box, {
    getValue: () => box.value,
    setValue: (v) => {
      box.value = v ?? "";
    },
    serialize: false, // not part of the prompt
    getMinHeight: () => 40,
    getMaxHeight: () => 120,
  });
  widget.serialize = false; // not saved in the workflow's widgets_values
  widget.sr4kBox = box;
  return widget;
}

app.registerExtension({
  name: "sr4k.OP4KSRUpscaleNotice",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_ID) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      noticeWidget(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (text === undefined) return;
      const value = Array.isArray(text) ? text.join("\n") : String(text);
      const widget = noticeWidget(this);
      widget.value = value;
      widget.sr4kBox.style.color = value.startsWith("Warning") ? "#f5a623" : ""; // amber: the base-FLUX warning
    };
  },
});
