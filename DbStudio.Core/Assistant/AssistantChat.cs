// The model behind the assistant: Microsoft.Extensions.AI's IChatClient over the OpenAI-compatible client, so any
// compatible endpoint works (OpenAI, Azure OpenAI, Ollama, vLLM, LM Studio). The API key stays in this process: it is
// sent only to the configured endpoint, never to the browser, and never logged. Cancelling a reply aborts the upstream
// HTTP request (the token flows into the client's SendAsync).
using System.ClientModel;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using OpenAI;

namespace DbStudio.Core.Assistant;

public sealed class AssistantChat : IDisposable
{
    private readonly IChatClient? _client;

    public AssistantChat(IOptions<AssistantOptions> options)
    {
        var o = options.Value;
        if (!o.IsConfigured) return;
        var key = string.IsNullOrEmpty(o.ApiKey) ? "no-key" : o.ApiKey; // local servers take any key
        _client = new OpenAI.Chat.ChatClient(o.Model, new ApiKeyCredential(key),
            new OpenAIClientOptions { Endpoint = new Uri(o.Endpoint!) }).AsIChatClient();
    }

    /// <summary>Whether an endpoint and a model are configured (DbStudio:Assistant:Endpoint and Model).</summary>
    public bool IsConfigured => _client is not null;

    private IChatClient Client => _client ?? throw new InvalidOperationException(
        "The assistant is not configured: set DbStudio:Assistant:Endpoint and DbStudio:Assistant:Model.");

    private static List<ChatMessage> Messages(string system, IEnumerable<(ChatRole Role, string Text)> conversation) =>
        [new(Microsoft.Extensions.AI.ChatRole.System, system),
         ..conversation.Select(m => new ChatMessage(m.Role == ChatRole.User ? Microsoft.Extensions.AI.ChatRole.User
             : Microsoft.Extensions.AI.ChatRole.Assistant, m.Text))];

    /// <summary>The reply as it streams, piece by piece. Cancelling <paramref name="ct"/> aborts the upstream request.</summary>
    public async IAsyncEnumerable<string> StreamAsync(string system, IEnumerable<(ChatRole Role, string Text)> conversation,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var update in Client.GetStreamingResponseAsync(Messages(system, conversation), cancellationToken: ct))
            if (update.Text is { Length: > 0 } text) yield return text;
    }

    /// <summary>The whole reply at once (no streaming).</summary>
    public async Task<string> AskAsync(string system, IEnumerable<(ChatRole Role, string Text)> conversation, CancellationToken ct = default) =>
        (await Client.GetResponseAsync(Messages(system, conversation), cancellationToken: ct)).Text;

    public void Dispose() => _client?.Dispose();
}
