// Xen Orchestra's connector (npm `xen-api`) across two front-ends of one cluster.
// Usage: node xo_cluster.mjs WATCH_URL WORKER_URL USER PASSWORD
// The watcher connects through WATCH_URL (a switchable forwarder in the test); the worker
// drives a task through WORKER_URL (another front-end). Midway the script prints
// "SWITCH NOW": the test then moves the forwarder to the worker's front-end, dropping the
// watcher's connections; the watcher's event.from loop retries with its token there and
// must still see the task finish. Prints "XO-CLUSTER OK" at the end.
import { createClient } from 'xen-api'

const [watchUrl, workerUrl, user, password] = process.argv.slice(2)
const deadline = setTimeout(() => {
  console.error('XO-CLUSTER TIMEOUT')
  process.exit(2)
}, 50_000)

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what)
  console.log('ok -', what)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Client settings only (the code is unchanged): retry a failed event.from after 200 ms
// instead of a minute, so the test does not wait.
const xapi = createClient({
  url: watchUrl,
  auth: { user, password },
  transport: 'json-rpc',
  watchEvents: ['task'],
  eventPollDelay: 200,
})
const worker = createClient({ url: workerUrl, auth: { user, password }, transport: 'json-rpc', watchEvents: false })

try {
  await xapi.connect()
  await worker.connect()
  await xapi.objectsFetched
  check(xapi.pool && typeof xapi.pool.$ref === 'string', 'connected through the first front-end')
  const t = await worker.call('task.create', 'xo-cluster', 'driven on the other front-end')
  const settled = xapi.watchTask(t)
  await worker.call('task.set_progress', t, 0.25)
  for (let i = 0; i < 100 && xapi.getObjectByRef(t, undefined)?.progress !== 0.25; i++) await sleep(50)
  check(xapi.getObjectByRef(t).progress === 0.25, 'an event from the other front-end arrived')
  console.log('SWITCH NOW')
  await sleep(500)
  await worker.call('task.set_result', t, '<value>done</value>')
  await worker.call('task.set_status', t, 'success')
  const result = await settled
  check(result === 'done', 'watchTask resolved after the switch')
  await worker.call('task.destroy', t)
  await worker.disconnect()
  await xapi.disconnect()
  clearTimeout(deadline)
  console.log('XO-CLUSTER OK')
  process.exit(0)
} catch (e) {
  console.error('XO-CLUSTER FAILED:', e)
  process.exit(1)
}
