// Runs the <sql>…</sql> blocks of an AI assistant's message through the console, in order, stopping at the first error.

namespace DbStudio.Core.Console;

public sealed record AssistantBlock(string Sql, List<StatementResult> Results);
public sealed record AssistantRun(List<AssistantBlock> Blocks, int? StoppedAt);

public sealed class AssistantSql(SqlConsole console)
{
    /// <summary>
    /// The text inside each &lt;sql&gt;…&lt;/sql&gt; pair (tags in any case), in order; blank blocks are skipped. A plain
    /// scan, linear in the text: a lazy regex is quadratic on a long message full of unclosed tags (the fuzz test's trap).
    /// </summary>
    public static List<string> ExtractBlocks(string text)
    {
        var blocks = new List<string>();
        var at = 0;
        while (true)
        {
            var open = text.IndexOf("<sql>", at, StringComparison.OrdinalIgnoreCase);
            if (open < 0) break;
            var close = text.IndexOf("</sql>", open + 5, StringComparison.OrdinalIgnoreCase);
            if (close < 0) break; // no later opening can close either
            var sql = text[(open + 5)..close].Trim();
            if (sql.Length > 0) blocks.Add(sql);
            at = close + 6;
        }
        return blocks;
    }

    public async Task<AssistantRun> RunAsync(string projectId, string text, CancellationToken ct = default)
    {
        var blocks = new List<AssistantBlock>();
        foreach (var sql in ExtractBlocks(text))
        {
            var results = await console.RunAsync(projectId, sql, ct, SqlSource.Assistant);
            blocks.Add(new AssistantBlock(sql, results));
            if (results.Any(r => r.Error is not null)) return new AssistantRun(blocks, blocks.Count - 1);
        }
        return new AssistantRun(blocks, null);
    }
}
