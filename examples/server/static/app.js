// TaskBridge demo page: plain JavaScript, no build step.
//
// A task's events arrive over SSE (EventSource), WebSocket or long polling.
// Whatever the transport, every event is shown once, in order: events are
// deduplicated by eventId and every (re)connection resumes after the last
// event shown. EventSource's own reconnect sends the Last-Event-ID header;
// reconnects made here pass the cursor as the lastEventId query parameter
// (SSE), the subscribe frame's lastEventId (WebSocket) or afterEventId
// (polling).
//
// Browsers cannot set headers on EventSource and WebSocket connections, so
// those carry the demo user as the access_token query parameter, which the
// demo server accepts on those two routes only. API requests send
// "Authorization: Bearer <user>".
'use strict';

const API = '/api/v1/tasks';
const DEFAULT_INPUTS = {
  greet: { name: 'World', steps: 5, stepDelayMs: 500 },
  approval: { ttlMs: 60000 },
  stream: { count: 20, intervalMs: 250 },
  fail: { delayMs: 500 },
};
const MAX_RETRIES = 4; // failed reconnects in a row before the next transport
const POLL_WAIT_MS = 25000;

const $ = (id) => document.getElementById(id);

// ApiError is a failed API request, with the protocol error envelope's code.
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

function newId(prefix) {
  if (window.crypto && typeof crypto.randomUUID === 'function') return `${prefix}-${crypto.randomUUID()}`;
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function currentUser() {
  return $('user').value.trim();
}

// api sends a JSON request as the current user and returns the decoded
// response, or throws an ApiError built from the error envelope.
async function api(method, path, body, signal) {
  const headers = { Authorization: `Bearer ${currentUser()}` };
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK_ERROR', `Network error: ${err.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    // not JSON: reported below
  }
  if (!resp.ok) {
    const code = (data && data.code) || `HTTP_${resp.status}`;
    let message = (data && data.message) || resp.statusText || 'Request failed';
    const fields = data && data.details && data.details.errors;
    if (Array.isArray(fields) && fields.length > 0) {
      message += ` (${fields.map((f) => `${f.field}: ${f.message}`).join('; ')})`;
    }
    throw new ApiError(resp.status, code, message);
  }
  if (data === null) throw new ApiError(resp.status, 'BAD_RESPONSE', 'The server sent no JSON');
  return data;
}

function showError(message) {
  $('error').textContent = message;
}

function clearError() {
  $('error').textContent = '';
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('log').appendChild(li);
}

function setStatus(status) {
  const el = $('status');
  el.textContent = status || '—';
  el.dataset.status = status || '';
}

function setTransport(name) {
  $('activeTransport').textContent = name || '—';
  $('activeTransport').dataset.transport = name || '';
}

function setProgress(value, text) {
  $('progress').value = value;
  $('progressText').textContent = text;
}

function eventPath(taskId, suffix) {
  return `${API}/${encodeURIComponent(taskId)}${suffix}`;
}

// TaskSession follows one task's events and drives the page for it.
class TaskSession {
  constructor(taskId, user, preference) {
    this.taskId = taskId;
    this.user = user;
    this.order = preference === 'auto' ? ['sse', 'ws', 'poll'] : [preference];
    this.index = 0;
    this.seen = new Set();
    this.lastEventId = '';
    this.terminal = false;
    this.closed = false;
    this.reconnects = 0;
    this.failures = 0; // failed (re)connects in a row
    this.worked = false; // the current transport delivered at least once
    this.suspension = null;
    this.es = null;
    this.ws = null;
    this.pollAbort = null;
    this.timer = null;
  }

  start() {
    this.connect();
  }

  // close stops following the task (the task itself goes on).
  close() {
    this.closed = true;
    this.disconnect();
  }

  disconnect() {
    clearTimeout(this.timer);
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, 'done');
    }
    if (this.pollAbort) {
      this.pollAbort.abort();
      this.pollAbort = null;
    }
  }

  get transport() {
    return this.order[this.index];
  }

  connect() {
    if (this.closed || this.terminal) return;
    setTransport(this.transport);
    if (this.transport === 'sse' && typeof EventSource === 'undefined') {
      this.fallback('this browser has no EventSource');
      return;
    }
    if (this.transport === 'sse') this.openSSE();
    else if (this.transport === 'ws') this.openWS();
    else this.poll();
  }

  // connected resets the failure count once a transport works.
  connected() {
    this.worked = true;
    this.failures = 0;
  }

  // lost handles a dropped or failed connection: reconnect with backoff
  // after the last event shown, or move on to the next transport when this
  // one never worked or keeps failing.
  lost(why) {
    this.disconnect();
    if (this.closed || this.terminal) return;
    this.failures++;
    if (!this.worked || this.failures > MAX_RETRIES) {
      this.fallback(why);
      return;
    }
    this.reconnects++;
    $('reconnects').textContent = String(this.reconnects);
    const delay = Math.min(250 * 2 ** (this.failures - 1), 4000);
    note(`${this.transport}: ${why}; reconnecting after event ${this.lastEventId || '(none)'} in ${delay} ms`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  fallback(why) {
    if (this.index + 1 >= this.order.length) {
      showError(`Lost the event stream (${this.transport}: ${why}); retrying in 5 s`);
      this.failures = 0;
      this.timer = setTimeout(() => this.connect(), 5000);
      return;
    }
    const from = this.transport;
    this.index++;
    this.worked = false;
    this.failures = 0;
    note(`${from} failed (${why}); falling back to ${this.transport}`);
    this.connect();
  }

  // SSE. The first connection passes the cursor as lastEventId; when the
  // connection drops, EventSource reconnects by itself and sends
  // Last-Event-ID. If it gives up (readyState CLOSED, as after an error
  // response), the page reconnects with lastEventId.
  openSSE() {
    const url = new URL(eventPath(this.taskId, '/events/stream'), location.href);
    url.searchParams.set('access_token', this.user);
    if (this.lastEventId) url.searchParams.set('lastEventId', this.lastEventId);
    const es = new EventSource(url.href);
    this.es = es;
    es.onopen = () => {
      if (this.es === es) this.connected();
    };
    es.onmessage = (msg) => {
      if (this.es !== es) return;
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      if (ev.type === 'HEARTBEAT') return;
      this.handle(ev);
    };
    es.onerror = () => {
      if (this.es !== es || this.closed || this.terminal) return;
      if (es.readyState === EventSource.CONNECTING && this.worked) {
        // The browser reconnects by itself, with Last-Event-ID.
        this.failures++;
        this.reconnects++;
        $('reconnects').textContent = String(this.reconnects);
        note(`sse: connection lost; the browser reconnects after event ${this.lastEventId || '(none)'}`);
        if (this.failures > MAX_RETRIES) this.lost('too many failed reconnects');
        return;
      }
      this.lost(this.worked ? 'the stream was closed' : 'could not connect');
    };
  }

  // WebSocket: subscribe with the cursor; SUBSCRIPTION_CONFIRMED means it
  // works. The server closes with 1000 after the terminal event.
  openWS() {
    const url = new URL(`${API}/ws`, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('access_token', this.user);
    let ws;
    try {
      ws = new WebSocket(url.href);
    } catch (err) {
      this.lost(`could not open: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const frame = { action: 'subscribe', taskId: this.taskId };
      if (this.lastEventId) frame.lastEventId = this.lastEventId;
      ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      if (frame.type === 'SUBSCRIPTION_CONFIRMED') {
        this.connected();
        return;
      }
      if (frame.type === 'HEARTBEAT') return;
      this.handle(frame);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost(`closed with code ${e.code}${e.reason ? ` (${e.reason})` : ''}`);
    };
  }

  // Long polling with afterEventId; the server waits up to POLL_WAIT_MS
  // for an event.
  async poll() {
    const ctrl = new AbortController();
    this.pollAbort = ctrl;
    while (!this.closed && !this.terminal && this.pollAbort === ctrl) {
      let path = `${eventPath(this.taskId, '/events')}?waitTimeoutMs=${POLL_WAIT_MS}`;
      if (this.lastEventId) path += `&afterEventId=${encodeURIComponent(this.lastEventId)}`;
      let batch;
      try {
        batch = await api('GET', path, undefined, ctrl.signal);
      } catch (err) {
        if (err.name === 'AbortError' || this.pollAbort !== ctrl) return;
        showError(`Polling failed: ${err}`);
        if (err.status >= 400 && err.status < 500 && err.status !== 429) {
          this.pollAbort = null; // permanent: retrying cannot help
          return;
        }
        this.lost(String(err));
        return;
      }
      this.connected();
      clearError();
      for (const ev of batch.events) this.handle(ev);
    }
  }

  // handle shows an event once: duplicates (by eventId) are dropped.
  handle(ev) {
    if (this.closed || !ev || typeof ev.eventId !== 'string' || ev.taskId !== this.taskId) return;
    if (this.seen.has(ev.eventId)) return;
    this.seen.add(ev.eventId);
    this.lastEventId = ev.eventId;
    render(this, ev);
    if (['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED'].includes(ev.type)) {
      this.terminal = true;
      this.disconnect();
    }
  }
}

function render(session, ev) {
  const li = document.createElement('li');
  li.dataset.eventId = ev.eventId;
  li.dataset.type = ev.type;
  li.textContent = `#${ev.eventId} ${ev.type} ${JSON.stringify(ev.payload)}`;
  $('log').appendChild(li);
  li.scrollIntoView({ block: 'nearest' });

  const p = ev.payload || {};
  switch (ev.type) {
    case 'TASK_STARTED':
      setStatus('RUNNING');
      break;
    case 'TASK_PROGRESS':
      setStatus('RUNNING');
      setProgress(p.progress, `${Math.round(p.progress)}%${p.stage ? ` — ${p.stage}` : ''}`);
      break;
    case 'TASK_MESSAGE': {
      const m = /^message (\d+) of (\d+)$/.exec(p.message || '');
      if (m && Number(m[2]) > 0) setProgress((100 * Number(m[1])) / Number(m[2]), p.message);
      break;
    }
    case 'TASK_SUSPENDED':
      session.suspension = p;
      setStatus('SUSPENDED');
      $('question').textContent = (p.interaction && p.interaction.question) || `Action required: ${p.reasonCode}`;
      $('expires').textContent = p.expiresAt ? `expires at ${new Date(p.expiresAt).toLocaleTimeString()}` : '';
      $('approve').disabled = !p.allowedActions.includes('approve');
      $('reject').disabled = !p.allowedActions.includes('reject');
      $('suspension').hidden = false;
      break;
    case 'TASK_ACTION_ACCEPTED':
      session.suspension = null;
      hideSuspension();
      setStatus('RUNNING');
      break;
    case 'TASK_COMPLETED':
      setStatus('COMPLETED');
      setProgress(100, '100%');
      $('result').textContent = JSON.stringify(p.result);
      break;
    case 'TASK_FAILED':
      setStatus('FAILED');
      $('result').textContent = `${p.code}: ${p.message}${p.retryable ? ' (retryable)' : ''}`;
      break;
    case 'TASK_CANCELLED':
      setStatus('CANCELLED');
      $('result').textContent = `cancelled: ${p.reason}`;
      break;
    default:
      break;
  }
  if (session.terminal || ['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED'].includes(ev.type)) {
    session.suspension = null;
    hideSuspension();
    $('cancel').disabled = true;
  }
}

function hideSuspension() {
  $('suspension').hidden = true;
  $('approve').disabled = true;
  $('reject').disabled = true;
}

let session = null;

function resetTaskView() {
  $('taskId').textContent = '—';
  setStatus('');
  setTransport('');
  setProgress(0, '');
  $('reconnects').textContent = '0';
  $('result').textContent = '';
  $('log').replaceChildren();
  hideSuspension();
  $('cancel').disabled = true;
  clearError();
}

async function startTask() {
  clearError();
  if (!currentUser()) {
    showError('Enter a user name first.');
    return;
  }
  let input;
  try {
    input = JSON.parse($('input').value.trim() || '{}');
  } catch (err) {
    showError(`The input is not valid JSON: ${err.message}`);
    return;
  }
  const taskType = $('taskType').value;
  const button = $('start');
  button.disabled = true;
  try {
    const created = await api('POST', API, { clientRequestId: newId('web'), taskType, input });
    if (session) session.close();
    resetTaskView();
    $('taskId').textContent = created.taskId;
    setStatus(created.status);
    $('cancel').disabled = false;
    session = new TaskSession(created.taskId, currentUser(), $('transport').value);
    session.start();
  } catch (err) {
    showError(`Could not create the task: ${err}`);
  } finally {
    button.disabled = false;
  }
}

async function submitAction(actionType) {
  const s = session;
  if (!s || !s.suspension) return;
  const suspendId = s.suspension.suspendId;
  $('approve').disabled = true;
  $('reject').disabled = true;
  try {
    const resp = await api('POST', eventPath(s.taskId, '/actions'), {
      clientActionId: newId('click'),
      suspendId,
      actionType,
    });
    if (resp.status !== 'ACCEPTED' && resp.status !== 'DEDUPLICATED') {
      showError(`The ${actionType} action was not taken: ${resp.status}`);
    } else {
      clearError();
    }
  } catch (err) {
    showError(`Could not ${actionType}: ${err}`);
    if (s === session && s.suspension && s.suspension.suspendId === suspendId) {
      $('approve').disabled = !s.suspension.allowedActions.includes('approve');
      $('reject').disabled = !s.suspension.allowedActions.includes('reject');
    }
  }
}

async function cancelTask() {
  const s = session;
  if (!s) return;
  $('cancel').disabled = true;
  try {
    const resp = await api('POST', eventPath(s.taskId, '/cancel'), { reason: 'cancelled from the demo page' });
    note(`cancel: ${resp.status}`);
    clearError();
  } catch (err) {
    showError(`Could not cancel: ${err}`);
    if (s === session && !s.terminal) $('cancel').disabled = false;
  }
}

function fillInput() {
  $('input').value = JSON.stringify(DEFAULT_INPUTS[$('taskType').value] || {});
}

$('taskType').addEventListener('change', fillInput);
$('start').addEventListener('click', startTask);
$('approve').addEventListener('click', () => submitAction('approve'));
$('reject').addEventListener('click', () => submitAction('reject'));
$('cancel').addEventListener('click', cancelTask);
fillInput();
document.body.dataset.ready = 'true';
