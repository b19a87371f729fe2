// `node keep-exports.mjs BINARYEN_INDEX_JS IN.wasm OUT.wasm NAME...`: writes IN
// with only the exports NAME..., then drops what no export, start function or
// table reaches any more (binaryen's remove-unused-module-elements). Used by
// scripts/build-guests to leave ruby.wasm's merged command with `_start` and
// `memory` alone, as a WASI command exports.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [binaryenPath, input, output, ...keep] = process.argv.slice(2);
const { default: binaryen } = await import(pathToFileURL(binaryenPath).href);

const module = binaryen.readBinary(readFileSync(input));
// What ruby.wasm and the driver use, and no more: binaryen writes the newest
// encodings of the features it is given (Features.All yields compact imports,
// which wasmtime 48 rejects).
const F = binaryen.Features;
module.setFeatures(F.MutableGlobals | F.NontrappingFPToInt | F.SignExt | F.BulkMemory | F.BulkMemoryOpt);
const names = [];
for (let i = 0; i < module.getNumExports(); i++) {
  names.push(binaryen.getExportInfo(module.getExportByIndex(i)).name);
}
for (const name of keep) {
  if (!names.includes(name)) throw new Error(`${input} exports no \`${name}\``);
}
for (const name of names) {
  if (!keep.includes(name)) module.removeExport(name);
}
module.runPasses(["remove-unused-module-elements"]);
if (!module.validate()) throw new Error("the result does not validate");
writeFileSync(output, module.emitBinary());
