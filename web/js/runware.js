// Runware Ovi + sync-3: frontend extension, loaded by ComfyUI from WEB_DIRECTORY.
// Served at /extensions/<pack folder>/js/runware.js, hence the three "..".
import { app } from "../../../scripts/app.js";

// Nodes whose INT "seed" must start at "fixed": with "randomize" every queue re-runs a paid job.
const PAID_NODES = new Set(["RunwareOvi"]);  // RunwareSync3 has no seed input

app.registerExtension({
  name: "runware.ovi_sync3",
  nodeCreated(node) {
    if (!PAID_NODES.has(node.comfyClass)) return;
    // Runs when a node is created; a loaded workflow's saved choice is applied afterwards.
    const control = node.widgets?.find((w) => w.name === "control_after_generate");
    if (control) control.value = "fixed";
  },
});
