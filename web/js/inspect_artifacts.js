// Shows the text that SR4K_InspectArtifacts returns (ui "text": its periodicity and seam scores) on the node.
// The frontend displays ui "images" on any node but ui "text" only for its own Preview Any node, hence this.
import { app } from "../../../scripts/app.js"; // served at /extensions/<pack>/js/

const NODE_ID = "SR4K_InspectArtifacts";
const WIDGET = "scores";

function scoresWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  const box = document.createElement("textarea");
  box.readOnly = true;
  box.className = "comfy-multiline-input";
  box.placeholder = "Queue the workflow: periodicity and seam scores appear here.";
  box.style.fontFamily = "monospace";
  box.dataset.sr4k = "inspect-scores";
  const widget = node.addDOMWidget(WIDGET, "sr4k_scores", box, {
    getValue: () => box.value,
    setValue: (v) => {
      box.value = v ?? "";
    },
    serialize: false, // not part of the prompt
    getMinHeight: () => 56, // a few lines; the heatmap preview gets the rest of the node
    getMaxHeight: () => 110,
  });
  widget.serialize = false; // not saved in the workflow's widgets_values
  return widget;
}

app.registerExtension({
  name: "sr4k.InspectArtifacts",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_ID) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      scoresWidget(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (text !== undefined) scoresWidget(this).value = Array.isArray(text) ? text.join("\n") : String(text);
    };
  },
});
