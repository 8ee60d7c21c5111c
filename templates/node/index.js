// The `{{name}}` function: the AWS Lambda programming model, no dependencies.
//
// Run it with `wisp up` in this directory, then, from another terminal in it:
//
//   curl localhost:8080/{{name}}/Ada                  # Hello, Ada!
//   wisp invoke {{name}} --data '{"name":"Ada"}'      # {"message":"Hello, Ada!"}
'use strict';

// Module scope runs once per instance, before the first event: put clients and caches here.
const GREETING = process.env.GREETING || 'Hello';

/** An HTTP request through a route, or any JSON event through `wisp invoke`. */
exports.handler = async (event) => {
  const e = event && typeof event === 'object' ? event : {};
  if (e.requestContext) {
    // Through a route: an API Gateway HTTP API (v2.0) event in, an HTTP response out.
    const name = e.pathParameters?.who || e.queryStringParameters?.name || 'world';
    console.error(`greeting ${name} over HTTP`); // stderr: the function's logs
    return {
      statusCode: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: `${GREETING}, ${name}!\n`,
    };
  }
  // Invoked directly: the event is whatever JSON the caller sent.
  const name = e.name || 'world';
  console.error(`greeting ${name}`);
  return { message: `${GREETING}, ${name}!` };
};
