// Settings of the panel's AI assistant (section DbStudio:Assistant): any OpenAI-compatible chat endpoint.
namespace DbStudio.Core.Assistant;

public sealed class AssistantOptions
{
    public const string Section = "DbStudio:Assistant";

    /// <summary>Base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama).</summary>
    public string? Endpoint { get; set; }
    /// <summary>The model name the endpoint knows, e.g. gpt-4o-mini or llama3.1.</summary>
    public string? Model { get; set; }
    /// <summary>The endpoint's API key: a server-side secret, never sent to the browser or logged. Optional for local servers.</summary>
    public string? ApiKey { get; set; }
    /// <summary>Stream replies token by token (true) or ask for the whole reply at once, for endpoints that cannot stream.</summary>
    public bool Stream { get; set; } = true;
    /// <summary>Characters of schema description the model is given at most; longer schemas are summarised.</summary>
    public int ContextBudget { get; set; } = 12_000;
    /// <summary>Messages of a conversation sent back to the model with each question (the newest ones).</summary>
    public int HistoryMessages { get; set; } = 20;
    /// <summary>Messages kept per project; older ones are dropped.</summary>
    public int KeptMessages { get; set; } = 200;

    public bool IsConfigured => Uri.TryCreate(Endpoint, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"
        && !string.IsNullOrWhiteSpace(Model);
}
