// Bundles src/main.jsx (and the CSS it imports) into canvas/static/canvas/dist/, where
// Django's static files (WhiteNoise under Daphne) serve it. Run by the Makefile.
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["src/main.jsx"],
  bundle: true,
  minify: true,
  target: ["es2020"],
  jsx: "automatic",
  loader: { ".js": "jsx" },
  define: { "process.env.NODE_ENV": '"production"' },
  outdir: "../../canvas/static/canvas/dist",
  entryNames: "app",
  logLevel: "warning",
});
