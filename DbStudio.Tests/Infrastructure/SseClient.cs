// A real SSE client for tests: an HTTP request read with .NET's System.Net.ServerSentEvents parser, events queued as
// they arrive. Raw lines are kept too, for what the parser hides (comments, retry:).
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;

namespace DbStudio.Tests.Infrastructure;

public sealed record SseEvent(string? Id, string Type, JsonElement Data)
{
    /// <summary>The change id inside the (opaque) event id, when the stream was opened with the project's id decoder.</summary>
    public long? Change { get; init; }
    public long IdNumber => Change ?? throw new InvalidOperationException("ids are opaque: open the stream with TestApp.StreamIdDecoderAsync");
    public string? RecordText(string column) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty("record", out var r) && r.ValueKind == JsonValueKind.Object && r.TryGetProperty(column, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ToString() : null;
}

public sealed class SseClient : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<SseEvent> _events = Channel.CreateUnbounded<SseEvent>();
    private readonly StringBuilder _raw = new();
    private Task _pump = Task.CompletedTask;

    private readonly Func<string, long?>? _decodeId;

    private SseClient(HttpClient http, Func<string, long?>? decodeId) => (_http, _decodeId) = (http, decodeId);

    public HttpResponseMessage Response { get; private set; } = null!;
    public string Raw { get { lock (_raw) return _raw.ToString(); } }
    public bool Ended { get; private set; }

    /// <summary>Opens the stream; for a refused one, Response holds the status and error body.</summary>
    public static async Task<SseClient> OpenAsync(Uri baseUrl, string pathAndQuery, string? bearer = null, string? lastEventId = null,
        Func<string, long?>? decodeId = null)
    {
        var client = new SseClient(new HttpClient { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan }, decodeId);
        var req = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (lastEventId is not null) req.Headers.Add("Last-Event-ID", lastEventId);
        client.Response = await client._http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, client._stop.Token);
        if (client.Response.IsSuccessStatusCode) client._pump = client.PumpAsync();
        return client;
    }

    private async Task PumpAsync()
    {
        try
        {
            await using var body = await Response.Content.ReadAsStreamAsync(_stop.Token);
            var tee = new TeeStream(body, _raw);
            await foreach (var item in SseParser.Create(tee).EnumerateAsync(_stop.Token))
                await _events.Writer.WriteAsync(new SseEvent(item.EventId, item.EventType,
                    JsonSerializer.Deserialize<JsonElement>(item.Data))
                    { Change = item.EventId is { Length: > 0 } id && _decodeId is not null ? _decodeId(id) : null });
        }
        catch (Exception) when (_stop.IsCancellationRequested) { }
        catch (HttpRequestException) { }
        catch (IOException) { }
        finally
        {
            Ended = true;
            _events.Writer.TryComplete();
        }
    }

    /// <summary>The next event (skipping none), or a failure after <paramref name="timeout"/>.</summary>
    public async Task<SseEvent> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20)); // generous: the suite runs in parallel on 2 cores
        try { return await _events.Reader.ReadAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"no event within {timeout ?? TimeSpan.FromSeconds(20)}; raw so far:\n{Raw}"); }
        catch (ChannelClosedException) { throw new InvalidOperationException($"stream ended; raw:\n{Raw}"); }
    }

    /// <summary>Events that arrive within <paramref name="quiet"/> (expecting none usually).</summary>
    public async Task<List<SseEvent>> DrainAsync(TimeSpan quiet)
    {
        var list = new List<SseEvent>();
        while (true)
        {
            using var cts = new CancellationTokenSource(quiet);
            try { list.Add(await _events.Reader.ReadAsync(cts.Token)); }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException) { return list; }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try { await _pump; } catch { /* stopped */ }
        Response?.Dispose();
        _http.Dispose();
    }

    /// <summary>Copies what is read into a string builder.</summary>
    private sealed class TeeStream(Stream inner, StringBuilder raw) : Stream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await inner.ReadAsync(buffer, ct);
            lock (raw) raw.Append(Encoding.UTF8.GetString(buffer.Span[..n]));
            return n;
        }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, default).GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
