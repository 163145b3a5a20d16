// One realtime-js connection: the Phoenix channel protocol over a WebSocket, for postgres_changes only. Frames are JSON
// arrays [join_ref, ref, topic, event, payload] (vsn 2.0.0) or objects (vsn 1.0.0). A channel ("realtime:…") joins with
// its postgres_changes bindings ({event, schema: 'public', table, filter: 'col=eq.value'}); each binding is one
// subscription of the live row stream, opened through the SSE stream's own path (StreamApi.OpenAsync): the same change
// hub and the same PostgreSQL-decided visibility, so a binding sees exactly what GET with the same credential would.
// A table the credential cannot read refuses the join (phx_reply error, as Realtime answers a refused join). The access
// token renews a channel's subscriptions (access_token); one that stops working (logout, expiry, role change) ends the
// channel with a system error and phx_close, as Realtime shuts a channel down. Broadcast and presence are refused in the
// protocol's own shape. Heartbeats on topic "phoenix" are answered. Tokens are never logged.
using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Streams;

namespace DbStudio.Web.Apis.Supabase;

// _work (a SemaphoreSlim) is left to the GC: its wait handle is never asked for, and sinks of subscriptions still
// closing may wait on it after RunAsync returns — disposing it then would turn their clean exit into an exception.
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001:Types that own disposable fields should be disposable",
    Justification = "SemaphoreSlim without AvailableWaitHandle holds no unmanaged resource; late sinks may still wait on it")]
public sealed class PhoenixSocket
{
    private const int MaxMessageBytes = 1 << 20;
    private const int MaxChannels = 100;
    private const int MaxBindings = 50;
    /// <summary>Change messages waiting to be sent before the slowest binding counts as fallen behind.</summary>
    private const int MaxQueued = 4096;
    /// <summary>How long a channel whose token stopped waits for the next one (realtime-js sends it right after a refresh).</summary>
    private static readonly TimeSpan RenewGrace = TimeSpan.FromSeconds(5);
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly WebSocket _ws;
    private readonly string _projectId;
    private readonly string _apiKey;
    private readonly bool _arrays;
    private readonly Credentials _credentials;
    private readonly StreamServices _streams;
    private readonly ILogger _log;
    private readonly Channel<Outgoing> _out = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    /// <summary>Every change to the set of channels (join, leave, token, revocation) runs under this, one at a time.</summary>
    private readonly SemaphoreSlim _work = new(1, 1);
    private readonly Dictionary<string, PhoenixChannel> _channels = new(StringComparer.Ordinal);
    private int _queued;
    private int _nextBindingId;
    private CancellationToken _stop;

    internal PhoenixSocket(WebSocket ws, string projectId, string apiKey, bool arrays, Credentials credentials, StreamServices streams, ILogger log)
    {
        _ws = ws;
        _projectId = projectId;
        _apiKey = apiKey;
        _arrays = arrays;
        _credentials = credentials;
        _streams = streams;
        _log = log;
    }

    private readonly record struct Outgoing(byte[]? Bytes, bool Counted, WebSocketCloseStatus? Close = null, string? Reason = null);

    public async Task RunAsync(CancellationToken aborted)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        _stop = stop.Token;
        var writer = WriteLoopAsync(stop);
        try { await ReadLoopAsync(stop.Token); }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException) { /* the client went away */ }
        finally
        {
            await _work.WaitAsync(CancellationToken.None);
            try
            {
                foreach (var c in _channels.Values) await c.DisposeAsync();
                _channels.Clear();
            }
            finally { _work.Release(); }
            _out.Writer.TryComplete();
            try { await writer.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None); } catch (Exception) { /* the socket is gone */ }
        }
    }

    // ---- transport -------------------------------------------------------------------------------------------

    private async Task ReadLoopAsync(CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        while (_ws.State == WebSocketState.Open)
        {
            buffer.ResetWrittenCount();
            ValueWebSocketReceiveResult r;
            do
            {
                r = await _ws.ReceiveAsync(buffer.GetMemory(4096), ct);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    _out.Writer.TryWrite(new Outgoing(null, false, WebSocketCloseStatus.NormalClosure, ""));
                    return;
                }
                buffer.Advance(r.Count);
                if (buffer.WrittenCount > MaxMessageBytes)
                {
                    _out.Writer.TryWrite(new Outgoing(null, false, WebSocketCloseStatus.MessageTooBig, $"Messages are limited to {MaxMessageBytes} bytes"));
                    return;
                }
            } while (!r.EndOfMessage);
            if (r.MessageType == WebSocketMessageType.Binary) continue; // binary frames carry broadcasts only: not served
            if (!TryParse(buffer.WrittenSpan, out var m))
            {
                _out.Writer.TryWrite(new Outgoing(null, false, WebSocketCloseStatus.InvalidPayloadData,
                    _arrays ? "Expected [join_ref, ref, topic, event, payload]" : "Expected {topic, event, payload, ref, join_ref}"));
                return;
            }
            await _work.WaitAsync(ct);
            try { await HandleAsync(m); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // e.g. the platform database unreachable while resolving a token: the client may retry (the join times out
                // or errs and realtime-js rejoins); never a secret in the log, only what failed.
                _log.LogWarning("A realtime message ({Event}) of project {Project} failed: {Error}", m.Event, _projectId, e.Message);
                if (m.Ref is not null) ReplyError(m, "Unable to process the message right now; try again");
            }
            finally { _work.Release(); }
        }
    }

    private async Task WriteLoopAsync(CancellationTokenSource stop)
    {
        try
        {
            await foreach (var m in _out.Reader.ReadAllAsync(stop.Token))
            {
                if (m.Close is { } status)
                {
                    if (_ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
                        await _ws.CloseOutputAsync(status, m.Reason, stop.Token);
                    break;
                }
                if (m.Counted) Interlocked.Decrement(ref _queued);
                await _ws.SendAsync(m.Bytes!, WebSocketMessageType.Text, true, stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException) { }
        finally { await stop.CancelAsync(); } // the reader stops too
    }

    private readonly record struct Message(string? JoinRef, string? Ref, string Topic, string Event, JsonElement Payload);

    private bool TryParse(ReadOnlySpan<byte> bytes, out Message m)
    {
        m = default;
        try
        {
            using var doc = JsonDocument.Parse(bytes.ToArray());
            var root = doc.RootElement;
            JsonElement joinRef, @ref, topic, evt, payload;
            if (_arrays)
            {
                if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() != 5) return false;
                (joinRef, @ref, topic, evt, payload) = (root[0], root[1], root[2], root[3], root[4]);
            }
            else
            {
                if (root.ValueKind != JsonValueKind.Object) return false;
                joinRef = root.TryGetProperty("join_ref", out var j) ? j : default;
                @ref = root.TryGetProperty("ref", out var r) ? r : default;
                topic = root.TryGetProperty("topic", out var t) ? t : default;
                evt = root.TryGetProperty("event", out var e) ? e : default;
                payload = root.TryGetProperty("payload", out var p) ? p : default;
            }
            if (topic.ValueKind != JsonValueKind.String || evt.ValueKind != JsonValueKind.String) return false;
            m = new Message(RefText(joinRef), RefText(@ref), topic.GetString()!, evt.GetString()!,
                payload.ValueKind == JsonValueKind.Object ? payload.Clone() : JsonDocument.Parse("{}").RootElement.Clone());
            return true;
        }
        catch (JsonException) { return false; }
    }

    private static string? RefText(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.GetRawText(),
        _ => null,
    };

    // ---- protocol --------------------------------------------------------------------------------------------

    private async Task HandleAsync(Message m)
    {
        if (m.Topic == "phoenix")
        {
            if (m.Event == "heartbeat") Reply(m, "ok", _ => { });
            return;
        }
        _channels.TryGetValue(m.Topic, out var channel);
        switch (m.Event)
        {
            case "phx_join":
                await JoinAsync(m, channel);
                return;
            case "phx_leave" when channel is not null:
                _channels.Remove(m.Topic);
                await channel.DisposeAsync();
                Reply(m, "ok", _ => { });
                return;
            case "access_token" when channel is not null:
                await RenewAsync(channel, Text(m.Payload, "access_token"));
                return;
            case "broadcast" or "presence" when channel is not null:
                ReplyError(m, $"{char.ToUpperInvariant(m.Event[0])}{m.Event[1..]} is not supported by DbStudio's realtime: only postgres_changes");
                return;
            case var _ when channel is null:
                ReplyError(m, "unmatched topic");
                return;
            default:
                return; // as Realtime: an unexpected message on a joined channel is ignored
        }
    }

    private async Task JoinAsync(Message m, PhoenixChannel? previous)
    {
        if (previous is not null) // a second join of the same topic replaces the first (Phoenix closes the old one)
        {
            _channels.Remove(m.Topic);
            await previous.DisposeAsync();
        }
        if (!m.Topic.StartsWith("realtime:", StringComparison.Ordinal)) { ReplyError(m, "Topics are named realtime:<name>"); return; }
        if (_channels.Count >= MaxChannels) { ReplyError(m, $"ChannelRateLimitReached: Too many channels (at most {MaxChannels} per connection)"); return; }
        var config = m.Payload.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object ? c : default;
        if (config.ValueKind == JsonValueKind.Object)
        {
            if (config.TryGetProperty("private", out var priv) && priv.ValueKind == JsonValueKind.True)
            {
                ReplyError(m, "Private channels are not supported by DbStudio's realtime: use postgres_changes on a public channel");
                return;
            }
            if (config.TryGetProperty("presence", out var pres) && pres.ValueKind == JsonValueKind.Object
                && pres.TryGetProperty("enabled", out var on) && on.ValueKind == JsonValueKind.True)
            {
                ReplyError(m, "Presence is not supported by DbStudio's realtime: only postgres_changes");
                return;
            }
        }
        var specs = new List<BindingSpec>();
        if (config.ValueKind == JsonValueKind.Object && config.TryGetProperty("postgres_changes", out var pcs) && pcs.ValueKind == JsonValueKind.Array)
        {
            if (pcs.GetArrayLength() > MaxBindings) { ReplyError(m, $"At most {MaxBindings} postgres_changes bindings per channel"); return; }
            foreach (var pc in pcs.EnumerateArray())
            {
                if (pc.ValueKind == JsonValueKind.Null) continue;
                if (BindingSpec.Parse(pc) is not { } spec) { ReplyError(m, BindingSpec.Problem(pc)); return; }
                specs.Add(spec);
            }
        }

        var token = AccessTokenOf(m.Payload);
        var caller = await _credentials.ResolveAsync(_projectId, _apiKey, token, _stop);
        if (caller is null) { ReplyError(m, "InvalidJWTToken: the access token is not valid for this project (signed out or expired)"); return; }
        var channel = new PhoenixChannel(this, m.Topic, m.JoinRef, token, StreamIdentity.Of(caller));
        foreach (var spec in specs)
        {
            var binding = new Binding(channel, Interlocked.Increment(ref _nextBindingId), spec);
            var refusal = await binding.OpenAsync(caller, resumeAfter: null);
            if (refusal is not null)
            {
                await channel.DisposeAsync();
                ReplyError(m, refusal);
                return;
            }
            channel.Bindings.Add(binding);
        }
        _channels[m.Topic] = channel;
        Reply(m, "ok", w =>
        {
            w.WriteStartArray("postgres_changes");
            foreach (var b in channel.Bindings)
            {
                w.WriteStartObject();
                w.WriteNumber("id", b.Id);
                w.WriteString("event", b.Spec.Event);
                w.WriteString("schema", b.Spec.Schema);
                w.WriteString("table", b.Spec.Table);
                if (b.Spec.Filter is not null) w.WriteString("filter", b.Spec.Filter);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
        if (channel.Bindings.Count > 0) SystemMessage(channel, "postgres_changes", "ok", "Subscribed to PostgreSQL");
        foreach (var b in channel.Bindings) b.Attach(); // after the reply: realtime-js matches events by the ids it carries
    }

    /// <summary>A new access token for a channel (realtime-js sends one after sign-in and each refresh).</summary>
    private async Task RenewAsync(PhoenixChannel channel, string? token)
    {
        token = token is not null && token.StartsWith("sb_", StringComparison.Ordinal) ? null : token;
        if (token is null || token == channel.Token) return;
        var caller = await _credentials.ResolveAsync(_projectId, _apiKey, token, _stop);
        if (caller is null)
        {
            await ShutdownAsync(channel, "InvalidJWTToken: the access token is not valid for this project (signed out or expired)");
            return;
        }
        await RenewAsync(channel, token, caller);
    }

    /// <summary>Reopens every binding of the channel with the credential now in force: the same identity resumes where it
    /// was (nothing lost, nothing twice); another identity (signed in or out) starts afresh, checked again.</summary>
    private async Task RenewAsync(PhoenixChannel channel, string? token, RestCaller caller)
    {
        var identity = StreamIdentity.Of(caller);
        var same = identity == channel.Identity;
        channel.Token = token;
        channel.Identity = identity;
        foreach (var b in channel.Bindings)
            if (await b.OpenAsync(caller, same ? b.Last : null, renewing: true) is { } refusal)
            {
                await ShutdownAsync(channel, refusal);
                return;
            }
    }

    /// <summary>A binding's subscription ended on its own: revoked (the credential stopped or changed) or dropped (too slow).</summary>
    private async Task EndedAsync(PhoenixChannel channel, Subscription sub, StreamEnd end)
    {
        try
        {
            await _work.WaitAsync(_stop);
            try
            {
                if (!_channels.TryGetValue(channel.Topic, out var current) || current != channel) return; // left meanwhile
                if (!channel.Bindings.Any(b => b.Current == sub)) return; // renewed meanwhile
                if (end == StreamEnd.Dropped)
                {
                    await ShutdownAsync(channel, "This client fell behind and was disconnected from its changes; subscribe again");
                    return;
                }
                // Revoked: the token may have been renewed just before (a refresh ends the old one). If not, realtime-js
                // sends the new one right after a refresh (access_token): nothing flows meanwhile, and without a valid
                // token within the grace period the channel ends.
                var caller = await _credentials.ResolveAsync(_projectId, _apiKey, channel.Token, _stop);
                if (caller is null) _ = GraceAsync(channel, channel.Token);
                else if (StreamIdentity.Of(caller) == channel.Identity) await RenewAsync(channel, channel.Token, caller);
                else await ShutdownAsync(channel, "The rights of this channel's user changed (role change): subscribe anew");
            }
            finally { _work.Release(); }
        }
        catch (OperationCanceledException) { /* the socket closed */ }
        catch (Exception e)
        {
            _log.LogWarning("Renewing a realtime channel of project {Project} failed: {Error}", _projectId, e.Message);
        }
    }

    /// <summary>Ends a channel whose token stopped unless a working one came meanwhile.</summary>
    private async Task GraceAsync(PhoenixChannel channel, string? stoppedToken)
    {
        try
        {
            await Task.Delay(RenewGrace, _stop);
            await _work.WaitAsync(_stop);
            try
            {
                if (!_channels.TryGetValue(channel.Topic, out var current) || current != channel || channel.Token != stoppedToken) return;
                await ShutdownAsync(channel, "The access token of this channel stopped working or changed (sign out, expiry, role change, key rotation); sign in again and subscribe anew");
            }
            finally { _work.Release(); }
        }
        catch (OperationCanceledException) { /* the socket closed */ }
        catch (Exception e)
        {
            _log.LogWarning("Renewing a realtime channel of project {Project} failed: {Error}", _projectId, e.Message);
        }
    }

    /// <summary>Ends a channel from the server's side, as Realtime does: a system error, then phx_close.</summary>
    private async Task ShutdownAsync(PhoenixChannel channel, string message)
    {
        _channels.Remove(channel.Topic);
        await channel.DisposeAsync();
        SystemMessage(channel, "system", "error", message);
        Send(channel.JoinRef, null, channel.Topic, "phx_close", _ => { });
    }

    private static string? AccessTokenOf(JsonElement payload) =>
        Text(payload, "access_token") is { } t && !t.StartsWith("sb_", StringComparison.Ordinal) ? t : null;

    private static string? Text(JsonElement o, string name) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    // ---- frames ----------------------------------------------------------------------------------------------

    private void Reply(Message m, string status, Action<Utf8JsonWriter> response) =>
        Send(m.JoinRef, m.Ref, m.Topic, "phx_reply", w =>
        {
            w.WriteString("status", status);
            w.WriteStartObject("response");
            response(w);
            w.WriteEndObject();
        });

    private void ReplyError(Message m, string reason) => Reply(m, "error", w => w.WriteString("reason", reason));

    private void SystemMessage(PhoenixChannel channel, string extension, string status, string message) =>
        Send(channel.JoinRef, null, channel.Topic, "system", w =>
        {
            w.WriteString("extension", extension);
            w.WriteString("status", status);
            w.WriteString("message", message);
            w.WriteString("channel", channel.SubTopic);
        });

    private void Send(string? joinRef, string? @ref, string topic, string evt, Action<Utf8JsonWriter> payload) =>
        _out.Writer.TryWrite(new Outgoing(Encode(joinRef, @ref, topic, evt, payload), false));

    /// <summary>A change for the client; false when too many are already waiting (the binding is then dropped).</summary>
    private bool SendChange(byte[] bytes)
    {
        if (Interlocked.Increment(ref _queued) > MaxQueued)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        if (_out.Writer.TryWrite(new Outgoing(bytes, true))) return true;
        Interlocked.Decrement(ref _queued);
        return true; // the socket is closing: nothing to send it to
    }

    private byte[] Encode(string? joinRef, string? @ref, string topic, string evt, Action<Utf8JsonWriter> payload)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            if (_arrays)
            {
                w.WriteStartArray();
                if (joinRef is null) w.WriteNullValue(); else w.WriteStringValue(joinRef);
                if (@ref is null) w.WriteNullValue(); else w.WriteStringValue(@ref);
                w.WriteStringValue(topic);
                w.WriteStringValue(evt);
                w.WriteStartObject();
                payload(w);
                w.WriteEndObject();
                w.WriteEndArray();
            }
            else
            {
                w.WriteStartObject();
                w.WriteString("topic", topic);
                w.WriteString("event", evt);
                w.WriteStartObject("payload");
                payload(w);
                w.WriteEndObject();
                if (@ref is null) w.WriteNull("ref"); else w.WriteString("ref", @ref);
                if (joinRef is null) w.WriteNull("join_ref"); else w.WriteString("join_ref", joinRef);
                w.WriteEndObject();
            }
        }
        return buffer.WrittenSpan.ToArray();
    }

    // ---- channels and bindings -------------------------------------------------------------------------------

    /// <summary>What realtime-js asked one binding for; echoed back exactly in the join reply (realtime-js compares).</summary>
    internal sealed record BindingSpec(string Event, string Schema, string Table, string? Filter, KeyValuePair<string, string>[] Filters)
    {
        public static BindingSpec? Parse(JsonElement pc)
        {
            if (pc.ValueKind != JsonValueKind.Object) return null;
            var evt = Text(pc, "event");
            var schema = Text(pc, "schema");
            var table = Text(pc, "table");
            var filter = Text(pc, "filter");
            if (evt is not ("*" or "INSERT" or "UPDATE" or "DELETE") || schema != SupabaseRestPaths.Profile || string.IsNullOrEmpty(table)) return null;
            if (string.IsNullOrEmpty(filter)) return new(evt, schema, table, null, []);
            var eq = filter.IndexOf('=');
            if (eq <= 0 || eq == filter.Length - 1) return null;
            return new(evt, schema, table, filter, [new(filter[..eq], filter[(eq + 1)..])]);
        }

        public static string Problem(JsonElement pc)
        {
            var evt = Text(pc, "event");
            if (evt is not ("*" or "INSERT" or "UPDATE" or "DELETE")) return $"Invalid postgres_changes event '{evt}': use INSERT, UPDATE, DELETE or *";
            if (Text(pc, "schema") != SupabaseRestPaths.Profile)
                return $"Unknown schema '{Text(pc, "schema")}': the project's tables are in the schema supabase-js calls '{SupabaseRestPaths.Profile}'";
            if (string.IsNullOrEmpty(Text(pc, "table"))) return "postgres_changes needs a table: DbStudio follows one table per binding";
            return $"Invalid filter '{Text(pc, "filter")}': write column=operator.value, e.g. id=eq.5";
        }
    }

    private sealed class PhoenixChannel(PhoenixSocket socket, string topic, string? joinRef, string? token, StreamIdentity identity) : IAsyncDisposable
    {
        public PhoenixSocket Socket { get; } = socket;
        public string Topic { get; } = topic;
        public string SubTopic { get; } = topic["realtime:".Length..];
        public string? JoinRef { get; } = joinRef;
        public string? Token { get; set; } = token;
        public StreamIdentity Identity { get; set; } = identity;
        public List<Binding> Bindings { get; } = [];

        public async ValueTask DisposeAsync()
        {
            foreach (var b in Bindings) await b.DisposeAsync();
        }
    }

    /// <summary>
    /// One postgres_changes binding: a subscription of the live row stream and the sink that turns its frames into
    /// postgres_changes messages. A renewal opens the next subscription before the last one closes; change ids already
    /// sent are skipped, so nothing arrives twice.
    /// </summary>
    private sealed class Binding(PhoenixChannel channel, int id, BindingSpec spec) : IAsyncDisposable
    {
        private readonly Lock _lock = new();
        public int Id { get; } = id;
        public BindingSpec Spec { get; } = spec;
        /// <summary>The subscription in force (null before the first opens, and after disposal).</summary>
        public Subscription? Current { get; private set; }
        private Sink? _pending;
        /// <summary>The last change id handed to the client.</summary>
        public long Last { get; private set; }

        /// <summary>Opens (or, renewing, reopens) the subscription; the refusal's message when PostgreSQL says no.</summary>
        public async Task<string?> OpenAsync(RestCaller caller, long? resumeAfter, bool renewing = false)
        {
            var s = channel.Socket;
            var credential = new StreamCredential(s._apiKey, channel.Token);
            var opened = await StreamApi.OpenAsync(s._streams, s._projectId, Spec.Table, caller, Spec.Filters, credential, null, resumeAfter, s._stop);
            if (opened.Subscription is not { } sub)
                return opened.Error is { } e ? $"{e.Message}{(e.Hint is null ? "" : " (" + e.Hint + ")")}" : "Unable to subscribe to changes";
            var sink = new Sink(this, sub);
            var old = Current;
            lock (_lock)
            {
                Current = sub;
                if (!renewing) Last = sub.StartAfter;
            }
            if (!renewing)
            {
                _pending = sink; // attached once the join reply is out
                return null;
            }
            // The gap since the last change sent (the same identity resumes after it), then live.
            var last = sub.StartAfter;
            await foreach (var f in s._streams.Hub.ReplayAsync(sub, last, s._stop))
            {
                Deliver(f, sub);
                last = f.Id;
            }
            sub.Attach(sink, last);
            if (old is not null) await old.DisposeAsync();
            return null;
        }

        public void Attach()
        {
            if (_pending is { } sink && Current is { } sub) sub.Attach(sink, sub.StartAfter);
            _pending = null;
        }

        public bool Deliver(in StreamFrame frame, Subscription from)
        {
            if (frame.Id < 0 || frame.Event is not { } ev) return true; // heartbeats: realtime-js sends its own
            byte[] bytes;
            lock (_lock)
            {
                if (frame.Id <= Last) return true; // already sent by the subscription this one renewed
                Last = frame.Id;
                var type = ev.Kind switch { ChangeKind.Insert => "INSERT", ChangeKind.Update => "UPDATE", _ => "DELETE" };
                if (Spec.Event != "*" && Spec.Event != type) return true;
                bytes = channel.Socket.Encode(channel.JoinRef, null, channel.Topic, "postgres_changes", w => Payload(w, ev, type, from.Table));
            }
            return channel.Socket.SendChange(bytes);
        }

        /// <summary>The payload realtime-js turns into {schema, table, commit_timestamp, eventType, new, old, errors}.</summary>
        private void Payload(Utf8JsonWriter w, StreamEvent ev, string type, TableInfo table)
        {
            w.WriteStartArray("ids");
            w.WriteNumberValue(Id);
            w.WriteEndArray();
            w.WriteStartObject("data");
            w.WriteString("schema", Spec.Schema);
            w.WriteString("table", table.Name);
            w.WriteString("commit_timestamp", ev.CommittedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'"));
            w.WriteString("type", type);
            // Only the columns this credential may read: those in the row as PostgreSQL returned it.
            var shown = ColumnNames(ev.Record ?? ev.OldRecord);
            w.WriteStartArray("columns");
            foreach (var c in table.Columns)
                if (shown.Contains(c.Name))
                {
                    w.WriteStartObject();
                    w.WriteString("name", c.Name);
                    w.WriteString("type", c.Type);
                    w.WriteEndObject();
                }
            w.WriteEndArray();
            if (type != "DELETE" && ev.Record is { } rec) { w.WritePropertyName("record"); w.WriteRawValue(rec, skipInputValidation: true); }
            if (type != "INSERT" && ev.OldRecord is { } old) { w.WritePropertyName("old_record"); w.WriteRawValue(old, skipInputValidation: true); }
            w.WriteNull("errors");
            w.WriteEndObject();
        }

        private static HashSet<string> ColumnNames(string? json)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            if (json is null) return names;
            var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(json));
            while (reader.Read())
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1) names.Add(reader.GetString()!);
            return names;
        }

        public void Ended(Subscription sub, StreamEnd end)
        {
            if (end == StreamEnd.Closed) return;
            // Off the hub's thread: Close runs under the subscription's lock, and this waits for the socket's work.
            _ = Task.Run(() => channel.Socket.EndedAsync(channel, sub, end));
        }

        public async ValueTask DisposeAsync()
        {
            Subscription? sub;
            lock (_lock)
            {
                sub = Current;
                Current = null;
            }
            _pending = null;
            if (sub is not null) await sub.DisposeAsync();
        }
    }

    /// <summary>The live end of one subscription: hands its frames to the binding (one sink per subscription, so the end of
    /// an old one after a renewal is told apart from the end of the one in force).</summary>
    private sealed class Sink(Binding binding, Subscription sub) : IStreamSink
    {
        public bool Deliver(in StreamFrame frame) => binding.Deliver(frame, sub);
        public void Flush() { }
        public void Close(StreamEnd end) => binding.Ended(sub, end);
    }
}
