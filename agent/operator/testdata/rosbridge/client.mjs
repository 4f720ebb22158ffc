// An independent rosbridge client: roslib (the standard ROS JavaScript
// library) over the ws package, against depai's /v1/rosbridge. It reads the
// rover's pose and fix, drives it with cmd_vel (and waits, through a tool the
// test adds, until the motors got it), calls a tool as a service,
// engages the e-stop and tries to drive again, then prints what it saw as
// one JSON object. Usage: node client.mjs ws://127.0.0.1:PORT/v1/rosbridge TOKEN
import { Ros, Topic, Service, AbstractTransport } from "roslib";
import WebSocket from "ws";

const [url, token] = process.argv.slice(2);
const seen = []; // every message the bridge sent, for the status checks

// roslib's own ws transport cannot send a header; this one is the same but
// for the Authorization header (a browser sends the console's cookie).
class BearerTransport extends AbstractTransport {
  constructor(socket) {
    super();
    this.socket = socket;
    socket.onopen = (e) => this.emit("open", e);
    socket.onclose = (e) => this.emit("close", e);
    socket.onerror = (e) => this.emit("error", e);
    socket.onmessage = (e) => {
      try { seen.push(JSON.parse(String(e.data))); } catch { /* roslib reports it */ }
      this.handleRawMessage(e.data);
    };
  }
  send(m) { this.socket.send(JSON.stringify(m)); }
  close() { this.socket.close(); }
  isConnecting() { return this.socket.readyState === WebSocket.CONNECTING; }
  isOpen() { return this.socket.readyState === WebSocket.OPEN; }
  isClosing() { return this.socket.readyState === WebSocket.CLOSING; }
  isClosed() { return this.socket.readyState === WebSocket.CLOSED; }
}

const within = (ms, what, p) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("timed out waiting for " + what)), ms))]);
const once = (topic) => new Promise((res) => { topic.subscribe((m) => { topic.unsubscribe(); res(m); }); });
const call = (name, type, args) => new Promise((res) => {
  new Service({ ros, name, serviceType: type }).callService(args, (v) => res({ ok: true, values: v }), (e) => res({ ok: false, error: e }));
});
const statusWith = (text) => within(5000, "a status with " + text, new Promise((res) => {
  const t = setInterval(() => {
    const s = seen.find((m) => m.op === "status" && String(m.msg).includes(text));
    if (s) { clearInterval(t); res(s.msg); }
  }, 10);
}));

const ros = new Ros({ transportFactory: async (u) => new BearerTransport(new WebSocket(u, { headers: { Authorization: "Bearer " + token } })) });
const opened = new Promise((res, rej) => { ros.on("connection", res); ros.on("error", (e) => rej(new Error("connection failed: " + (e?.message ?? e)))); });
await ros.connect(url);
await within(5000, "the connection", opened);

const out = {};
out.topics = await within(5000, "getTopics", new Promise((res, rej) => ros.getTopics(res, rej)));
out.pose = await within(5000, "a pose", once(new Topic({ ros, name: "/rover/pose", messageType: "depai_msgs/RobotState" })));
out.fix = await within(5000, "a fix", once(new Topic({ ros, name: "/rover/fix", messageType: "sensor_msgs/NavSatFix" })));
const cmd = new Topic({ ros, name: "/rover/cmd_vel", messageType: "geometry_msgs/Twist" });
cmd.publish({ linear: { x: 0.4, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });
// The drive runs on the bridge's worker for the topic (decided by the policy,
// audited) after the publish: the e-stop below must not overtake it.
await within(5000, "the drive to reach the motors", new Promise((res) => {
  const poll = () => call("/rover/motors.drives", "depai/Tool", {}).then((r) => (r.ok && r.values.drives >= 1 ? res() : setTimeout(poll, 10)));
  poll();
}));
out.clock = await within(5000, "the clock service", call("/rover/clock", "depai/Clock", {}));
out.unknown = await within(5000, "an unknown service", call("/rover/warp.drive", "std_srvs/Trigger", {}));
out.estop = await within(5000, "the e-stop", call("/depai/estop", "std_srvs/Trigger", {}));
cmd.publish({ linear: { x: 0.4, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
out.refused = await statusWith("emergency stop");
cmd.publish({ linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
await new Promise((res) => setTimeout(res, 200));
ros.close();
console.log(JSON.stringify(out));
process.exit(0);
