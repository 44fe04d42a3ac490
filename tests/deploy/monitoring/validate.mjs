// Validates Prometheus Operator objects (a JSON array on stdin) with the schemas of
// @kubernetes-models/prometheus-operator; prints one JSON array of "Kind/name: path: message" errors.
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = { PodMonitor, ServiceMonitor };
let input = "";
for await (const chunk of process.stdin) input += chunk;
const errors = [];
for (const doc of JSON.parse(input)) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const Model = MODELS[doc.kind];
  if (!Model || doc.apiVersion !== "monitoring.coreos.com/v1") {
    errors.push(`${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (error) {
    errors.push(`${name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify(errors));
