// Handlers for examples/node: the Lambda programming model, no dependencies.
'use strict';

// Module scope runs once per instance, at init: put clients and caches here.
const GREETING = process.env.GREETING || 'Hello';

/** GET /hello[/:name][?name=...]: an async handler, API Gateway v2 event in, HTTP response out. */
exports.hello = async (event) => {
  const name = event.pathParameters?.name || event.queryStringParameters?.name || 'world';
  console.error(`greeting ${name}`); // stderr: the function's logs
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: `${GREETING}, ${name}!\n`,
  };
};

/** Invoked through the API only: a callback-style handler returning what it got. */
exports.echo = (event, context, callback) => {
  console.log('echo invoked with', JSON.stringify(event)); // stdout: also the function's logs
  setImmediate(() =>
    callback(null, {
      event,
      requestId: context.awsRequestId,
      functionName: context.functionName,
      memoryLimitInMB: context.memoryLimitInMB,
      remainingTimeInMillis: context.getRemainingTimeInMillis(),
    }),
  );
};
