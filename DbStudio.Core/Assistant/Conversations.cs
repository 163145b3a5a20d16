// The assistant's conversation of each project, kept in platform metadata (platform.assistant_messages, plain SQL on the
// platform's login: no project schema is touched). Bounded per project; cleared on request; gone with the project.
using Npgsql;
using Microsoft.Extensions.Options;

namespace DbStudio.Core.Assistant;

public enum ChatRole { User, Assistant }

public sealed record StoredMessage(long Id, ChatRole Role, string Text, DateTimeOffset At);

public sealed class Conversations(NpgsqlDataSource platform, IOptions<AssistantOptions> options)
{
    /// <summary>Longest message kept, in characters (a reply is cut there).</summary>
    public const int MaxMessageLength = 200_000;

    public async Task<List<StoredMessage>> ListAsync(string projectId, CancellationToken ct = default)
    {
        await using var cmd = platform.CreateCommand("""
            SELECT id, role, content, created_at FROM platform.assistant_messages WHERE project_id = $1 ORDER BY id
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = projectId });
        var list = new List<StoredMessage>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new StoredMessage(r.GetInt64(0), r.GetString(1) == "user" ? ChatRole.User : ChatRole.Assistant, r.GetString(2),
                r.GetFieldValue<DateTimeOffset>(3)));
        return list;
    }

    /// <summary>Adds a message and drops the project's oldest beyond AssistantOptions.KeptMessages.</summary>
    public async Task<long> AddAsync(string projectId, ChatRole role, string text, CancellationToken ct = default)
    {
        if (text.Length > MaxMessageLength) text = text[..MaxMessageLength];
        await using var batch = platform.CreateBatch();
        var add = new NpgsqlBatchCommand("""
            INSERT INTO platform.assistant_messages (project_id, role, content) VALUES ($1, $2, $3) RETURNING id
            """);
        add.Parameters.Add(new NpgsqlParameter { Value = projectId });
        add.Parameters.Add(new NpgsqlParameter { Value = role == ChatRole.User ? "user" : "assistant" });
        add.Parameters.Add(new NpgsqlParameter { Value = text });
        var trim = new NpgsqlBatchCommand("""
            DELETE FROM platform.assistant_messages WHERE project_id = $1 AND id <= (
                SELECT id FROM platform.assistant_messages WHERE project_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)
            """);
        trim.Parameters.Add(new NpgsqlParameter { Value = projectId });
        trim.Parameters.Add(new NpgsqlParameter { Value = Math.Max(1, options.Value.KeptMessages) });
        batch.BatchCommands.Add(add);
        batch.BatchCommands.Add(trim);
        return (long)(await batch.ExecuteScalarAsync(ct))!;
    }

    public async Task ClearAsync(string projectId, CancellationToken ct = default)
    {
        await using var cmd = platform.CreateCommand("DELETE FROM platform.assistant_messages WHERE project_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = projectId });
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
