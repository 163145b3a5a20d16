// One person's assistant chat for one project (the drawer's state and logic, without UI): the stored conversation,
// sending a question and streaming the reply, Stop, and running the reply's <sql> and <access> blocks — reads at once
// only when allowed, writes on a click, destructive statements after a typed confirmation, in order, stopping at the
// first error. Blocks run through the console (Console/SqlConsole, on the owner's login, into the SQL tab's history).
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DbStudio.Core.Assistant;

public enum BlockKind { Sql, Access }
public enum BlockState { Waiting, Running, Done, Failed, NeedsConfirmation }

/// <summary>A block of a reply: SQL to run, or access settings to apply to a table.</summary>
public sealed class ReplyBlock(int index, BlockKind kind, string text, string? table)
{
    public int Index { get; } = index;
    public BlockKind Kind { get; } = kind;
    public string Text { get; } = text;
    /// <summary>The table an access block is for.</summary>
    public string? Table { get; } = table;
    public BlockRisk Risk { get; } = kind == BlockKind.Sql ? StatementRisk.Classify(text) : new BlockRisk(RiskLevel.Write, null, null);
    public BlockState State { get; set; }
    public List<StatementResult>? Results { get; set; }
    /// <summary>Why the block failed (the SQL error, or an access block's problem).</summary>
    public string? Error { get; set; }
    /// <summary>Whether it ran at once, in a read-only transaction (AutoRunReads).</summary>
    public bool RanAutomatically { get; set; }
}

/// <summary>A piece of a message: plain text, or a block.</summary>
public sealed record Segment(string? Text, ReplyBlock? Block);

public sealed class ChatEntry(ChatRole role, string text)
{
    public ChatRole Role { get; } = role;
    public string Text { get; set; } = text;
    public bool Streaming { get; set; }
    public bool Stopped { get; set; }
    /// <summary>What went wrong asking the model (shown in place of a reply).</summary>
    public string? Failure { get; set; }
    /// <summary>The reply's blocks, once it is complete; null while it streams.</summary>
    public List<ReplyBlock>? Blocks { get; set; }
    /// <summary>Where a run of all blocks stopped (the failed block's index), if it did.</summary>
    public int? StoppedAt { get; set; }

    /// <summary>The text cut into plain text and blocks (while streaming, blocks are shown but cannot run yet).</summary>
    public List<Segment> Segments()
    {
        var parsed = AssistantSession.Parse(Text);
        var blocks = Blocks;
        return parsed.Select(s => s.Block is { } b && blocks is not null && b.Index < blocks.Count ? s with { Block = blocks[b.Index] } : s).ToList();
    }
}

public sealed partial class AssistantSession(string projectId, string restUrl, AssistantChat chat, AssistantContext context,
    Conversations conversations, SqlConsole console, AccessPolicies access, IOptions<AssistantOptions> options, ILogger log)
{
    private readonly AssistantOptions _opt = options.Value;
    private CancellationTokenSource? _reply;

    public string ProjectId { get; } = projectId;
    public List<ChatEntry> Messages { get; } = [];
    /// <summary>Blocks that only read may run as soon as a reply arrives (in a READ ONLY transaction). Off by default.</summary>
    public bool AutoRunReads { get; set; }
    public bool IsConfigured => chat.IsConfigured;
    public bool Replying => _reply is not null;

    /// <summary>Something to show changed (a token arrived, a block ran).</summary>
    public event Action? Changed;
    /// <summary>A block changed the schema or access settings: the table list and tabs should reload.</summary>
    public event Func<Task>? SchemaChanged;

    public async Task LoadAsync(CancellationToken ct = default)
    {
        Messages.Clear();
        foreach (var m in await conversations.ListAsync(ProjectId, ct))
        {
            var entry = new ChatEntry(m.Role, m.Text);
            if (m.Role == ChatRole.Assistant) entry.Blocks = BlocksOf(m.Text);
            Messages.Add(entry);
        }
    }

    public async Task ClearAsync(CancellationToken ct = default)
    {
        Stop();
        await conversations.ClearAsync(ProjectId, ct);
        Messages.Clear();
        Changed?.Invoke();
    }

    /// <summary>Stops the reply being streamed: the upstream request is aborted; what arrived is kept.</summary>
    public void Stop() => _reply?.Cancel();

    /// <summary>Asks the model; the reply streams into <see cref="Messages"/>. Returns the reply once complete (or stopped).</summary>
    public async Task<ChatEntry?> SendAsync(string question, CancellationToken ct = default)
    {
        question = question.Trim();
        if (question.Length == 0 || !chat.IsConfigured || _reply is not null) return null;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _reply = cts;
        var reply = new ChatEntry(ChatRole.Assistant, "") { Streaming = true };
        try
        {
            Messages.Add(new ChatEntry(ChatRole.User, question));
            Messages.Add(reply);
            Changed?.Invoke();
            await conversations.AddAsync(ProjectId, ChatRole.User, question, CancellationToken.None);
            var facts = await context.FactsAsync(ProjectId, restUrl, cts.Token);
            var system = AssistantContext.SystemPrompt(facts, _opt.ContextBudget);
            var history = Messages.Where(m => m != reply && m.Failure is null && m.Text.Length > 0)
                .TakeLast(Math.Max(1, _opt.HistoryMessages)).Select(m => (m.Role, m.Text)).ToList();
            if (_opt.Stream)
            {
                var text = new StringBuilder();
                await foreach (var piece in chat.StreamAsync(system, history, cts.Token))
                {
                    text.Append(piece);
                    reply.Text = text.ToString();
                    Changed?.Invoke();
                }
            }
            else reply.Text = await chat.AskAsync(system, history, cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            reply.Stopped = true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Never the API key: it is not part of the client's errors; the message says what the endpoint answered.
            log.LogWarning("The assistant's model endpoint failed for project {Project}: {Error}", ProjectId, e.GetType().Name);
            reply.Failure = "The model endpoint failed: " + e.Message;
        }
        finally
        {
            _reply = null;
            reply.Streaming = false;
        }
        reply.Blocks = BlocksOf(reply.Text);
        if (reply.Text.Length > 0)
            await conversations.AddAsync(ProjectId, ChatRole.Assistant, reply.Stopped ? reply.Text + "\n\n(stopped)" : reply.Text, CancellationToken.None);
        Changed?.Invoke();
        if (AutoRunReads && !reply.Stopped)
            foreach (var b in reply.Blocks.TakeWhile(b => b.Kind == BlockKind.Sql && b.Risk.Level == RiskLevel.Read))
                if (!await RunBlockAsync(b, automatic: true, ct: ct)) break;
        return reply;
    }

    /// <summary>
    /// Runs one block. A destructive one runs only when <paramref name="confirmation"/> is its confirm word (otherwise it
    /// asks for it and returns false). Returns whether it ran without error.
    /// </summary>
    public async Task<bool> RunBlockAsync(ReplyBlock block, string? confirmation = null, bool automatic = false, CancellationToken ct = default)
    {
        if (block.State == BlockState.Running) return false;
        if (block.Risk.Level == RiskLevel.Destructive &&
            !string.Equals(confirmation?.Trim(), block.Risk.ConfirmWord, StringComparison.OrdinalIgnoreCase))
        {
            block.State = BlockState.NeedsConfirmation;
            Changed?.Invoke();
            return false;
        }
        if (automatic && block.Risk.Level != RiskLevel.Read) return false;
        block.State = BlockState.Running;
        block.Error = null;
        Changed?.Invoke();
        try
        {
            if (block.Kind == BlockKind.Access) block.Error = await ApplyAccessAsync(block, ct);
            else
            {
                block.Results = automatic ? await RunReadOnlyAsync(block.Text, ct) : await console.RunAsync(ProjectId, block.Text, ct, SqlSource.Assistant);
                block.RanAutomatically = automatic;
                if (block.Results.FirstOrDefault(r => r.Error is not null)?.Error is { } e) block.Error = $"{e.Code}: {e.Message}";
            }
        }
        catch (OperationCanceledException) { block.Error = "Canceled."; }
        block.State = block.Error is null ? BlockState.Done : BlockState.Failed;
        Changed?.Invoke();
        if (block.Risk.Level != RiskLevel.Read && SchemaChanged is { } changed) await changed();
        return block.Error is null;
    }

    /// <summary>
    /// Runs the reply's blocks in order, from the first not yet run; stops at the first error (recorded in StoppedAt) or
    /// at a destructive block not confirmed yet. Returns whether all ran.
    /// </summary>
    public async Task<bool> RunAllAsync(ChatEntry reply, CancellationToken ct = default)
    {
        if (reply.Blocks is not { } blocks) return false;
        reply.StoppedAt = null;
        foreach (var b in blocks.Where(b => b.State != BlockState.Done))
        {
            if (!await RunBlockAsync(b, ct: ct))
            {
                reply.StoppedAt = b.Index;
                Changed?.Invoke();
                return false;
            }
        }
        return true;
    }

    /// <summary>Reads run at once go through PostgreSQL's READ ONLY transaction: a "read" that would write fails (25006).</summary>
    private async Task<List<StatementResult>> RunReadOnlyAsync(string sql, CancellationToken ct)
    {
        var results = await console.RunAsync(ProjectId, "BEGIN READ ONLY;\n" + sql.TrimEnd().TrimEnd(';') + ";\nCOMMIT;", ct, SqlSource.Assistant);
        if (results.Count > 0 && results[0].Command == "BEGIN" && results[0].Error is null) results.RemoveAt(0);
        if (results.Count > 0 && results[^1].Command is "COMMIT" or "ROLLBACK" && results[^1].Error is null) results.RemoveAt(results.Count - 1);
        return results;
    }

    private static readonly string[] AccessKeys = ["anon_select", "anon_insert", "auth_insert", "auth_select_own", "auth_update_own",
        "auth_delete_own", "user_id_col"];

    /// <summary>Applies an access block over the table's current settings; returns the problem, if any.</summary>
    private async Task<string?> ApplyAccessAsync(ReplyBlock block, CancellationToken ct)
    {
        if (block.Table is not { Length: > 0 } table) return "The access block names no table (<access table=\"name\">).";
        Dictionary<string, JsonElement>? changes;
        try { changes = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(block.Text); }
        catch (JsonException e) { return "The access block is not a JSON object: " + e.Message; }
        if (changes is null) return "The access block is empty.";
        var unknown = changes.Keys.Where(k => !AccessKeys.Contains(k)).ToList();
        if (unknown.Count > 0) return $"Unknown access keys: {string.Join(", ", unknown)} (known: {string.Join(", ", AccessKeys)}).";
        var current = await access.GetAsync(ProjectId, table, ct);
        if (current is null) return $"There is no table \"{table}\".";
        bool Flag(string k, bool now) => changes.TryGetValue(k, out var v) ? v.ValueKind switch
        {
            JsonValueKind.True => true, JsonValueKind.False => false,
            _ => throw new FormatException($"{k} must be true or false"),
        } : now;
        AccessSettings next;
        try
        {
            next = new AccessSettings(Flag("anon_select", current.anon_select), Flag("anon_insert", current.anon_insert),
                Flag("auth_insert", current.auth_insert), Flag("auth_select_own", current.auth_select_own),
                Flag("auth_update_own", current.auth_update_own), Flag("auth_delete_own", current.auth_delete_own),
                changes.TryGetValue("user_id_col", out var col)
                    ? col.ValueKind == JsonValueKind.Null ? null
                    : col.ValueKind == JsonValueKind.String ? col.GetString() : throw new FormatException("user_id_col must be a column name or null")
                    : current.user_id_col);
        }
        catch (FormatException e) { return e.Message; }
        var (applied, error) = await access.PutAsync(ProjectId, table, next, ct);
        return error ?? (applied is null ? $"There is no table \"{table}\"." : null);
    }

    [GeneratedRegex("""<sql>|<access(?:\s+table\s*=\s*"(?<table>[^"]*)")?\s*>""", RegexOptions.IgnoreCase)]
    private static partial Regex OpenTag();

    /// <summary>The blocks of a reply, in order (numbered as <see cref="Parse"/> numbers them).</summary>
    public static List<ReplyBlock> BlocksOf(string text) => Parse(text).Where(s => s.Block is not null).Select(s => s.Block!).ToList();

    /// <summary>
    /// Cuts a reply into text and blocks: &lt;sql&gt;…&lt;/sql&gt; and &lt;access table="…"&gt;{…}&lt;/access&gt;. An unclosed
    /// tag (a reply still streaming) is shown as text. Blank blocks are dropped, as AssistantSql does.
    /// </summary>
    public static List<Segment> Parse(string text)
    {
        var segments = new List<Segment>();
        var at = 0;
        var index = 0;
        while (at < text.Length)
        {
            var open = OpenTag().Match(text, at);
            if (!open.Success) break;
            var isSql = open.Value.StartsWith("<sql", StringComparison.OrdinalIgnoreCase);
            var closeTag = isSql ? "</sql>" : "</access>";
            var close = text.IndexOf(closeTag, open.Index + open.Length, StringComparison.OrdinalIgnoreCase);
            if (close < 0) break;
            if (open.Index > at) segments.Add(new Segment(text[at..open.Index], null));
            var body = text[(open.Index + open.Length)..close].Trim();
            if (body.Length > 0)
                segments.Add(new Segment(null, new ReplyBlock(index++, isSql ? BlockKind.Sql : BlockKind.Access, body,
                    isSql ? null : open.Groups["table"].Value)));
            at = close + closeTag.Length;
        }
        if (at < text.Length) segments.Add(new Segment(text[at..], null));
        return segments;
    }
}
