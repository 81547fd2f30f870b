// Turns a DeepSeek-V3 tokenizer_config.json into an R1-style one: the generation prompt opens
// <think>, so replies start with reasoning (as DeepSeek-R1's template does).
import { readFileSync, writeFileSync } from 'node:fs';

const path = process.argv[2];
const cfg = JSON.parse(readFileSync(path, 'utf8'));
const from = "{{'<｜Assistant｜>'}}{% endif %}";
if (!cfg.chat_template.endsWith(from)) throw new Error(`${path}: unexpected chat_template ending`);
cfg.chat_template = cfg.chat_template.slice(0, -from.length) + "{{'<｜Assistant｜><think>\\n'}}{% endif %}";
writeFileSync(path, JSON.stringify(cfg, null, 2));
