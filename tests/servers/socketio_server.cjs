// The reference Node Socket.IO server (socket.io 4.8, npm) for tests/real_servers.rs, set as
// socketio_server.py: heartbeats every second with a one-second timeout; `subscribe` is
// acknowledged with `subscribed` and an `order` is pushed 3.5 s later. Loopback only.
//     NODE_PATH=.cache/realtime/node_modules node socketio_server.cjs PORT
const http = require("http");
const { Server } = require("socket.io");

const server = http.createServer();
const io = new Server(server, { pingInterval: 1000, pingTimeout: 1000 });
io.on("connection", (socket) => {
  socket.on("subscribe", (topic) => {
    socket.emit("subscribed", topic);
    setTimeout(() => socket.emit("order", { id: 1, topic }), 3500);
  });
});
server.listen(Number(process.argv[2]), "127.0.0.1");
