// The reference graphql-ws server (graphql-ws 6.4 on ws 8, npm) for tests/real_servers.rs,
// with its default 3 s wait for `connection_init`. Loopback only.
//     NODE_PATH=.cache/realtime/node_modules node graphql_ws_server.cjs PORT
const { WebSocketServer } = require("ws");
const { useServer } = require("graphql-ws/use/ws");
const { buildSchema } = require("graphql");

const schema = buildSchema(`
  type Query { hello: String }
  type Order { id: Int }
  type Subscription { orders: Order }
`);
const roots = {
  query: { hello: () => "hi" },
  subscription: {
    orders: async function* () {
      for (let i = 0; i < 100; i++) {
        yield { orders: { id: i } };
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  },
};
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]), path: "/graphql" });
useServer({ schema, roots }, wss);
