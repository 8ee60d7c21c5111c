/**
 * Wisp's bootstrap for `runtime = "node"` functions.
 *
 * Wisp starts it as `node node.js` with the function's code directory as the
 * working directory. It speaks AWS Lambda's Runtime API (2018-06-01) at
 * $AWS_LAMBDA_RUNTIME_API: it loads the handler named by $_HANDLER once (CommonJS
 * or ES module), then loops: fetch the next event, call
 * `handler(event, context, callback)`, post the result or the error. Standard
 * library only; behaviour follows AWS's Node runtime wherever that defines it.
 * See README.md beside this file.
 */
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { pathToFileURL } = require('url');

const API_PREFIX = '/2018-06-01/runtime';
const env = process.env;
let api; // { host, port }
let initialised = false;
let current = null; // the invocation in flight: { id, answered }

/** Wisp is gone or broke the protocol: one line on stderr, status 1. */
function fatal(message) {
  process.stderr.write(`wisp node runtime: ${message}\n`);
  process.exit(1);
}

/** An error the runtime itself reports, with a `Runtime.*` type. */
function fault(errorType, message, cause) {
  const error = new Error(message);
  error.name = errorType;
  // The cause's stack points at the user's code (a syntax error's starts with
  // the file and line); ours would not. Its "Require stack" is in the message.
  error.stack = cause && typeof cause.stack === 'string'
    ? cause.stack.split('\n').filter((l) => l !== 'Require stack:' && !l.startsWith('- ')).join('\n')
    : `${errorType}: ${message}`;
  return error;
}

/**
 * The Runtime API connection: one kept-alive HTTP/1.1 socket and at most one
 * request in flight. A small client over `net` rather than `http`, whose
 * per-request machinery tripled the warm overhead. The socket is unref'd
 * between requests, so a handler that leaves nothing scheduled still lets the
 * event loop empty (see `beforeExit` below).
 */
const connection = { socket: null, buffer: Buffer.alloc(0), waiting: null };

function connect() {
  const socket = net.connect(api);
  socket.setNoDelay(true);
  socket.on('data', (chunk) => {
    connection.buffer = connection.buffer.length ? Buffer.concat([connection.buffer, chunk]) : chunk;
    parseResponse();
  });
  const broken = (e) => {
    if (connection.socket !== socket) return;
    connection.socket = null;
    const waiting = connection.waiting;
    connection.waiting = null;
    if (waiting) waiting.fail(e || new Error('the connection closed'));
  };
  socket.on('error', broken);
  socket.on('close', () => broken(null));
  connection.socket = socket;
  connection.buffer = Buffer.alloc(0);
  return socket;
}

/** Resolves the request in flight once its whole response is buffered. */
function parseResponse() {
  const waiting = connection.waiting;
  if (!waiting) return;
  const end = connection.buffer.indexOf('\r\n\r\n');
  if (end < 0) return;
  const lines = connection.buffer.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] || 0);
  if (connection.buffer.length < end + 4 + length) return;
  const body = Buffer.from(connection.buffer.subarray(end + 4, end + 4 + length));
  connection.buffer = connection.buffer.subarray(end + 4 + length);
  connection.waiting = null;
  if (connection.socket) connection.socket.unref();
  if ((headers.connection || '').toLowerCase() === 'close' && connection.socket) {
    connection.socket.destroy();
    connection.socket = null;
  }
  waiting.done({ status: Number(lines[0].split(' ')[1]), headers, body });
}

/**
 * One request to the Runtime API, without a timeout: `next` is a long poll.
 * A kept-alive socket the server closed while we were idle is retried once.
 */
function request(method, urlPath, body, headers, retried) {
  return new Promise((resolve) => {
    const reused = connection.socket !== null;
    const socket = connection.socket || connect();
    socket.ref();
    connection.waiting = {
      done: resolve,
      fail: (e) => {
        if (reused && !retried) resolve(request(method, urlPath, body, headers, true));
        else fatal(`cannot reach the Runtime API at ${env.AWS_LAMBDA_RUNTIME_API}: ${e.message}`);
      },
    };
    let head = `${method} ${API_PREFIX}${urlPath} HTTP/1.1\r\nHost: ${env.AWS_LAMBDA_RUNTIME_API}\r\n`;
    for (const [name, value] of Object.entries(headers || {})) head += `${name}: ${value}\r\n`;
    socket.write(body ? Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body]) : `${head}\r\n`);
  });
}

async function post(urlPath, body, errorType) {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': body.length };
  if (errorType) headers['Lambda-Runtime-Function-Error-Type'] = errorType;
  const res = await request('POST', urlPath, body, headers);
  if (res.status < 200 || res.status > 299) {
    // Wisp has already decided how this invocation ends (e.g. 413 for a
    // response too large); say so in the logs and carry on.
    process.stderr.write(`wisp node runtime: POST ${urlPath} answered HTTP ${res.status}: ${res.body.toString().slice(0, 200)}\n`);
  }
}

/** The Runtime API error body: AWS's fields, with `stackTrace` for `trace`. */
function errorResult(error) {
  if (error instanceof Error || (error && typeof error.name === 'string' && typeof error.message === 'string')) {
    const stack = typeof error.stack === 'string' ? error.stack : `${error.name}: ${error.message}`;
    const stackTrace = stack.split('\n').filter((line) => !line.includes(__filename));
    return { errorType: error.name, errorMessage: error.message, stackTrace };
  }
  return { errorType: typeof error, errorMessage: String(error), stackTrace: [] };
}

function logError(result) {
  const header = `${result.errorType}: ${result.errorMessage}`;
  const said = new Set([...header.split('\n'), ...result.errorMessage.split('\n')]);
  const frames = result.stackTrace.filter((line) => !said.has(line));
  process.stderr.write([`[ERROR] ${header}`, ...frames].join('\n') + '\n');
}

async function postError(urlPath, error) {
  const result = errorResult(error);
  logError(result);
  await post(urlPath, Buffer.from(JSON.stringify(result)), result.errorType);
}

/** The nearest package.json above `dir` says `"type": "module"`. */
function isModulePackage(dir) {
  for (;;) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')).type === 'module';
      } catch (e) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

/** Loads the user's module as AWS does: extensionless, .js, .mjs, .cjs, then node_modules. */
async function loadModule(taskRoot, moduleRoot, name) {
  const base = path.resolve(taskRoot, moduleRoot, name);
  const exists = (ext) => fs.existsSync(base + ext);
  if (exists('')) return require(base);
  const esm = isModulePackage(path.dirname(base));
  if (exists('.js')) return esm ? import(pathToFileURL(`${base}.js`).href) : require(`${base}.js`);
  if (exists('.mjs')) return import(pathToFileURL(`${base}.mjs`).href);
  if (exists('.cjs')) return require(`${base}.cjs`);
  return require(require.resolve(name, { paths: [taskRoot, path.resolve(taskRoot, moduleRoot)] }));
}

/** Resolves `_HANDLER` ("index.handler", "src/app.handler", "app.nested.fn") to a function. */
async function loadHandler(taskRoot, spec) {
  if (spec.includes('..')) {
    throw fault('Runtime.MalformedHandlerName', `'${spec}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const base = path.basename(spec);
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match) throw fault('Runtime.MalformedHandlerName', 'Bad handler');
  const moduleRoot = spec.slice(0, spec.length - base.length);
  let app;
  try {
    app = await loadModule(taskRoot, moduleRoot, match[1]);
  } catch (e) {
    // AWS's message is the cause as text; its "Require stack" need not name us.
    const text = () => String(e).split('\n').filter((l) => !l.includes(__filename))
      .join('\n').replace(/\nRequire stack:$/, '');
    if (e instanceof SyntaxError) throw fault('Runtime.UserCodeSyntaxError', text(), e);
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw fault('Runtime.ImportModuleError', text(), e);
    }
    throw e;
  }
  const handler = match[2].split('.').reduce((object, key) => object && object[key], app);
  if (!handler) throw fault('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  if (typeof handler !== 'function') throw fault('Runtime.HandlerNotFound', `${spec} is not a function`);
  return handler;
}

/** The `context` argument, with the properties of AWS's Node context. */
function makeContext(headers, done) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']) || 0;
  const context = {
    callbackWaitsForEmptyEventLoop: true, // accepted, but Wisp answers on the callback regardless
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    done: (error, result) => done(error, result),
    succeed: (result) => done(null, result),
    fail: (error) => done(error == null ? 'handled' : error),
  };
  const identity = jsonHeader(headers, 'lambda-runtime-cognito-identity');
  const clientContext = jsonHeader(headers, 'lambda-runtime-client-context');
  if (identity !== undefined) context.identity = identity;
  if (clientContext !== undefined) context.clientContext = clientContext;
  return context;
}

function jsonHeader(headers, name) {
  if (!headers[name]) return undefined;
  try {
    return JSON.parse(headers[name]);
  } catch (e) {
    throw fault('Runtime.LambdaContextUnmarshalError', `Unable to parse ${name} JSON: ${e.message}`);
  }
}

/**
 * Calls the handler and settles with the first outcome: a returned promise, the
 * callback (or context.done/succeed/fail), or, for a plain function taking
 * fewer than three parameters, its return value. If the event loop empties
 * first, the answer is `null`, as on AWS.
 */
function invoke(handler, event, headers) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn, value) => { if (!settled) { settled = true; fn(value); } };
    const callback = (error, result) => (error != null ? settle(reject, error) : settle(resolve, result));
    current.finish = callback;
    const context = makeContext(headers, callback);
    let returned;
    try {
      returned = handler(event, context, callback);
    } catch (e) {
      return settle(reject, e);
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => settle(resolve, result), (e) => settle(reject, e));
    } else if (handler.length < 3) {
      settle(resolve, returned);
    }
  });
}

function serialise(result) {
  try {
    return Buffer.from(JSON.stringify(result === undefined ? null : result) ?? 'null');
  } catch (e) {
    throw fault('Runtime.MarshalError', `Unable to stringify response body: ${e.message}`);
  }
}

async function handle(handler, headers, body) {
  const id = headers['lambda-runtime-aws-request-id'] || '';
  current = { id, answered: false };
  let payload;
  try {
    let event;
    try {
      event = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw fault('Runtime.UnmarshalError', `Unable to unmarshal input: ${e.message}`);
    }
    payload = serialise(await invoke(handler, event, headers));
  } catch (e) {
    current.answered = true;
    return postError(`/invocation/${id}/error`, e);
  }
  current.answered = true;
  return post(`/invocation/${id}/response`, payload);
}

/** An exception or rejection nobody caught: fail the invocation (or init) and exit. */
async function crash(error) {
  if (!initialised) {
    await postError('/init/error', error);
    process.exit(1);
  }
  if (current && !current.answered) {
    current.answered = true;
    await postError(`/invocation/${current.id}/error`, error);
  } else {
    logError(errorResult(error));
  }
  process.exit(129);
}

async function main() {
  if (!env.AWS_LAMBDA_RUNTIME_API || env._HANDLER === undefined) fatal('AWS_LAMBDA_RUNTIME_API and _HANDLER must be set');
  const url = new URL(`http://${env.AWS_LAMBDA_RUNTIME_API}`);
  api = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
  process.on('uncaughtException', crash);
  // A callback handler that never calls back and leaves nothing scheduled
  // would let Node exit; AWS answers `null` then, and so do we.
  process.on('beforeExit', () => current && !current.answered && current.finish && current.finish(null, null));
  process.on('unhandledRejection', (reason) => {
    const error = fault('Runtime.UnhandledPromiseRejection', String(reason), reason);
    crash(error);
  });

  let handler;
  try {
    handler = await loadHandler(env.LAMBDA_TASK_ROOT || process.cwd(), env._HANDLER);
  } catch (e) {
    await postError('/init/error', e);
    process.exit(1);
  }
  // A rejection the module left unhandled surfaces after a turn of the loop:
  // let it, so that it fails init rather than the first invocation.
  await new Promise((resolve) => setImmediate(resolve));
  initialised = true;

  for (;;) {
    const res = await request('GET', '/invocation/next');
    if (res.status !== 200) fatal(`GET /invocation/next answered HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    if (res.headers['lambda-runtime-trace-id']) env._X_AMZN_TRACE_ID = res.headers['lambda-runtime-trace-id'];
    else delete env._X_AMZN_TRACE_ID;
    await handle(handler, res.headers, res.body);
  }
}

main();
