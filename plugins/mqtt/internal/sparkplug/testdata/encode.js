// Encodes Sparkplug B payloads with the reference npm package
// sparkplug-payload: reads a JSON array of payloads on stdin, writes one
// hex-encoded payload per line.
const sp = require("sparkplug-payload").get("spBv1.0");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  for (const p of JSON.parse(input)) {
    console.log(Buffer.from(sp.encodePayload(p)).toString("hex"));
  }
});
