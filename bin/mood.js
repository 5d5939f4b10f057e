#!/usr/bin/env node
'use strict';
// The `mood` command. Runs the compiled CLI (dist/); in a source checkout without dist/, falls back
// to ts-node so `node bin/mood.js` works during development.
const path = require('node:path');
const fs = require('node:fs');
const compiled = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (fs.existsSync(compiled)) {
  require(compiled).main(process.argv.slice(2));
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(__dirname, '..', 'tsconfig.json') });
  require('../lib/cli/main.ts').main(process.argv.slice(2));
}
