import "@xterm/xterm/css/xterm.css";
import "./style.css";

const root = document.getElementById("app");
if (root) root.textContent = "jobcast";
