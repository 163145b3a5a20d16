// A real OpenAI-compatible HTTP server for the assistant's tests: Kestrel on loopback, POST /v1/chat/completions.
// It records each request (body and Authorization header) and answers with scripted replies — streamed as
// chat.completion.chunk Server-Sent Events when the request asks to stream, one chat.completion otherwise. A reply can
// wait at a gate between its pieces, or hang until the client goes away (Aborted then completes).
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DbStudio.Tests.Infrastructure;

public sealed record ModelRequest(string Body, string? Authorization, JsonElement Json)
{
    public bool Stream => Json.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
    public string Model => Json.GetProperty("model").GetString()!;
    public IEnumerable<(string Role, string Content)> Messages => Json.GetProperty("messages").EnumerateArray()
        .Select(m => (m.GetProperty("role").GetString()!, Content(m.GetProperty("content"))));

    private static string Content(JsonElement c) => c.ValueKind == JsonValueKind.String ? c.GetString()!
        : string.Concat(c.EnumerateArray().Select(p => p.TryGetProperty("text", out var t) ? t.GetString() : ""));
}

/// <summary>
/// A scripted reply: its pieces; Gate (if any) is awaited after the first piece; Hang keeps it open until aborted;
/// a Status other than 200 answers with an OpenAI-style error instead.
/// </summary>
public sealed record ScriptedReply(string[] Pieces, Task? Gate = null, bool Hang = false, int Status = 200);

public sealed class FakeModelServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ScriptedReply> _script = new();
    private readonly TaskCompletionSource _aborted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _firstPieceSent = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<ModelRequest> Requests { get; } = new();
    /// <summary>Completes when a hanging reply's client went away (the request was aborted).</summary>
    public Task Aborted => _aborted.Task;
    /// <summary>Completes when the first piece of any streamed reply has been flushed.</summary>
    public Task FirstPieceSent => _firstPieceSent.Task;
    /// <summary>The base URL to configure as DbStudio:Assistant:Endpoint (…/v1).</summary>
    public string Endpoint { get; private set; } = "";

    private FakeModelServer(WebApplication app) => _app = app;

    public static async Task<FakeModelServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeModelServer(app);
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Endpoint = address.TrimEnd('/') + "/v1";
        return server;
    }

    public void Enqueue(params string[] pieces) => _script.Enqueue(new ScriptedReply(pieces));
    public void Enqueue(ScriptedReply reply) => _script.Enqueue(reply);

    private async Task HandleAsync(HttpContext ctx)
    {
        var body = await new StreamReader(ctx.Request.Body).ReadToEndAsync();
        var request = new ModelRequest(body, ctx.Request.Headers.Authorization.FirstOrDefault(), JsonDocument.Parse(body).RootElement.Clone());
        Requests.Enqueue(request);
        var reply = _script.TryDequeue(out var r) ? r : new ScriptedReply(["(no scripted reply left)"]);
        if (reply.Status != 200)
        {
            ctx.Response.StatusCode = reply.Status;
            await ctx.Response.WriteAsJsonAsync(new { error = new { message = string.Concat(reply.Pieces), type = "invalid_request_error", code = "scripted" } });
            return;
        }
        if (!request.Stream)
        {
            await ctx.Response.WriteAsJsonAsync(new
            {
                id = "chatcmpl-fake", @object = "chat.completion", created = 1_764_480_000, model = request.Model,
                choices = new[] { new { index = 0, message = new { role = "assistant", content = string.Concat(reply.Pieces) }, finish_reason = "stop" } },
                usage = new { prompt_tokens = 10, completion_tokens = 10, total_tokens = 20 },
            });
            return;
        }
        ctx.Response.ContentType = "text/event-stream";
        async Task Send(object chunk)
        {
            await ctx.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk) + "\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        }
        object Chunk(string? content, string? finish) => new
        {
            id = "chatcmpl-fake", @object = "chat.completion.chunk", created = 1_764_480_000, model = request.Model,
            choices = new[] { new { index = 0, delta = content is null ? (object)new { } : new { role = "assistant", content }, finish_reason = finish } },
        };
        try
        {
            for (var i = 0; i < reply.Pieces.Length; i++)
            {
                await Send(Chunk(reply.Pieces[i], null));
                if (i == 0)
                {
                    _firstPieceSent.TrySetResult();
                    if (reply.Gate is not null) await reply.Gate.WaitAsync(ctx.RequestAborted);
                }
            }
            if (reply.Hang) await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            await Send(Chunk(null, "stop"));
            await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            _aborted.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
