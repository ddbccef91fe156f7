// Validates AsyncAPI documents with the AsyncAPI Initiative's parser (the one its CLI and Studio use).
// Prints one JSON line per document: {file, errors: [...], warnings: [...]}; exits 1 if any has an error.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
  const describe = (d) => ({ code: d.code, message: d.message, path: d.path.join("/") });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map(describe);
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).map(describe);
  if (errors.length || !document) failed = true;
  console.log(JSON.stringify({ file, parsed: Boolean(document), version: document?.version(), errors, warnings }));
}
process.exit(failed ? 1 : 0);
