// One bundle for every page: templates/pages/app.html names the page in data-page and its
// props in the page-props JSON script.
import { createRoot } from "react-dom/client";
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { pageProps } from "./api.js";
import EditorPage from "./editor.jsx";
import GraphsPage from "./graphs.jsx";
import { RunPage, RunsPage } from "./runs.jsx";
import ChatPage from "./chat.jsx";
import KeysPage from "./keys.jsx";

const PAGES = { graphs: GraphsPage, editor: EditorPage, runs: RunsPage, run: RunPage, chat: ChatPage, keys: KeysPage };

const root = document.getElementById("app");
const Page = root && PAGES[root.dataset.page];
if (Page) {
  document.body.classList.add(`page-${root.dataset.page}`);
  createRoot(root).render(<Page {...pageProps()} />);
}
