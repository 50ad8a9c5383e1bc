// Xen Orchestra's connector (npm `xen-api`) against a running xapi-taskd.
// Usage: node xo_test.mjs URL USER PASSWORD TRANSPORT   (TRANSPORT: json-rpc | xml-rpc | auto)
// Prints one line per step and "XO-TEST OK" at the end; exits non-zero on any failure.
import { createClient } from 'xen-api'

const [url, user, password, transport] = process.argv.slice(2)
const deadline = setTimeout(() => {
  console.error('XO-TEST TIMEOUT')
  process.exit(2)
}, 60_000)

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what)
  console.log('ok -', what)
}

const xapi = createClient({ url, auth: { user, password }, transport, watchEvents: ['task'] })
// A second, independent client plays the worker that drives the tasks.
const worker = createClient({ url, auth: { user, password }, transport, watchEvents: false })

try {
  await xapi.connect()
  await worker.connect()
  check(xapi.pool && typeof xapi.pool.$ref === 'string', 'connected and got the pool record')
  await xapi.objectsFetched
  check(true, 'initial objects fetched (event.inject + get_all_records)')

  // A task driven to success with an XML-RPC encoded result, watched through event.from.
  const t1 = await xapi.call('task.create', 'xo-success', 'driven by the worker')
  const settled = xapi.watchTask(t1)
  await worker.call('task.set_progress', t1, 0.5)
  await worker.call('task.set_result', t1, '<value>OpaqueRef:result-ref</value>')
  await worker.call('task.set_status', t1, 'success')
  const result = await settled
  check(result === 'OpaqueRef:result-ref', `watchTask resolved with the decoded result (${result})`)
  const cached = xapi.getObjectByRef(t1)
  check(cached.progress === 0.5 && cached.status === 'success', 'the cached record followed the events')

  // Cancel: XO asks, the task's owner notices current_operations and reports cancelled.
  const t2 = await xapi.call('task.create', 'xo-cancel', '')
  const cancelled = xapi.watchTask(t2)
  await xapi.call('task.cancel', t2)
  const ops = await worker.call('task.get_current_operations', t2)
  check(Object.values(ops).includes('cancel'), 'task.cancel recorded the request')
  await worker.call('task.set_status', t2, 'cancelled')
  let rejected = false
  await cancelled.catch(() => { rejected = true })
  check(rejected, 'watchTask rejected for the cancelled task')

  // A failure carries error_info as an XAPI error.
  const t3 = await xapi.call('task.create', 'xo-failure', '')
  const failed = xapi.watchTask(t3)
  await worker.call('task.set_error_info', t3, ['SOME_ERROR', 'p1'])
  await worker.call('task.set_status', t3, 'failure')
  const err = await failed.then(() => null, e => e)
  check(err && err.code === 'SOME_ERROR' && err.params[0] === 'p1', 'watchTask rejected with the task error')

  // Async call: a real task, completed by the server, awaited through events.
  const asyncResult = await xapi.callAsync('task.add_to_other_config', t1, 'xo', 'yes')
  check(asyncResult === '', 'callAsync resolved (void result)')
  const oc = await worker.call('task.get_other_config', t1)
  check(oc.xo === 'yes', 'the async call took effect')

  for (const t of [t1, t2, t3]) await xapi.call('task.destroy', t)
  await worker.disconnect()
  await xapi.disconnect()
  check(true, 'disconnected')
  clearTimeout(deadline)
  console.log('XO-TEST OK')
  process.exit(0)
} catch (e) {
  console.error('XO-TEST FAILED:', e)
  process.exit(1)
}
