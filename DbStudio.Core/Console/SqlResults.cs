// What the SQL console returns per statement (DESIGN §7): columns, capped rows, true row count, or an error as data;
// added (compatible) fields say what was cut: rowCountExact, truncatedValues, notice.
using System.Text.Json;
using System.Text.Json.Serialization;
using DbStudio.Core.Catalog;
using Npgsql;

namespace DbStudio.Core.Console;

/// <summary>How a column's PostgreSQL text output is written to JSON.</summary>
public enum ValueKind { String, Number, Boolean, Json }

public sealed record ResultColumn(string Name, string Type)
{
    [JsonIgnore] public ValueKind Kind { get; init; }

    public static ValueKind KindOf(uint oid) => oid switch
    {
        PgType.Bool => ValueKind.Boolean,
        PgType.Int8 or PgType.Int2 or PgType.Int4 or PgType.Oid or PgType.Float4 or PgType.Float8 or PgType.Numeric => ValueKind.Number,
        PgType.Json or PgType.Jsonb => ValueKind.Json,
        _ => ValueKind.String,
    };
}

/// <summary>A value the console cut: its place in the result and its true length in bytes (UTF-8 text).</summary>
public sealed record TruncatedValue(int Row, int Column, long Bytes);

public sealed record SqlError(string Code, string Message, string? Detail = null, string? Hint = null, int? Position = null)
{
    public static SqlError From(PostgresException e, int statementOffset) => new(
        e.SqlState, e.MessageText, e.Detail, e.Hint,
        e.Position > 0 ? statementOffset + e.Position : null);
}

/// <summary>One statement's outcome. Rows hold PostgreSQL's text output (null for SQL NULL).</summary>
[JsonConverter(typeof(StatementResultConverter))]
public sealed class StatementResult
{
    public required string Statement { get; init; }
    /// <summary>0-based position of the statement in the script.</summary>
    public int Offset { get; init; }
    public string? Command { get; init; }
    public IReadOnlyList<ResultColumn>? Columns { get; init; }
    public IReadOnlyList<string?[]>? Rows { get; init; }
    public long RowCount { get; init; }
    /// <summary>True when rows or parts of values were left out (the row cap, MaxValueBytes, the run's byte budget).</summary>
    public bool Truncated { get; init; }
    /// <summary>Values cut at MaxValueBytes or by the budget (the kept text is in <see cref="Rows"/>); null when none.</summary>
    public IReadOnlyList<TruncatedValue>? TruncatedValues { get; init; }
    /// <summary>False when the query was stopped once the budget was spent: <see cref="RowCount"/> is then a lower bound.</summary>
    public bool RowCountExact { get; init; } = true;
    /// <summary>What was left out and why, for people; null when nothing was.</summary>
    public string? Notice { get; init; }
    public double ElapsedMs { get; init; }
    public SqlError? Error { get; init; }
}

internal sealed class StatementResultConverter : JsonConverter<StatementResult>
{
    public override StatementResult Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("StatementResult is written, not read");

    public override void Write(Utf8JsonWriter w, StatementResult r, JsonSerializerOptions options)
    {
        w.WriteStartObject();
        w.WriteString("statement", r.Statement);
        if (r.Error is { } e)
        {
            w.WritePropertyName("error");
            w.WriteStartObject();
            w.WriteString("code", e.Code);
            w.WriteString("message", e.Message);
            w.WriteString("detail", e.Detail);
            w.WriteString("hint", e.Hint);
            if (e.Position is int p) w.WriteNumber("position", p); else w.WriteNull("position");
            w.WriteEndObject();
            w.WriteNumber("elapsedMs", Math.Round(r.ElapsedMs, 3));
            w.WriteEndObject();
            return;
        }
        w.WriteString("command", r.Command);
        w.WritePropertyName("columns");
        w.WriteStartArray();
        foreach (var c in r.Columns ?? [])
        {
            w.WriteStartObject();
            w.WriteString("name", c.Name);
            w.WriteString("type", c.Type);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WritePropertyName("rows");
        w.WriteStartArray();
        var cols = r.Columns ?? [];
        var cut = r.TruncatedValues is { Count: > 0 } list ? list.Select(v => (v.Row, v.Column)).ToHashSet() : null;
        var rowIndex = 0;
        foreach (var row in r.Rows ?? [])
        {
            w.WriteStartArray();
            for (var i = 0; i < row.Length; i++)
                // A cut value is only a prefix: never valid JSON or a number, so it is written as text.
                WriteValue(w, row[i], cut?.Contains((rowIndex, i)) == true ? ValueKind.String : i < cols.Count ? cols[i].Kind : ValueKind.String);
            w.WriteEndArray();
            rowIndex++;
        }
        w.WriteEndArray();
        w.WriteNumber("rowCount", r.RowCount);
        w.WriteBoolean("truncated", r.Truncated);
        w.WriteBoolean("rowCountExact", r.RowCountExact);
        if (r.TruncatedValues is { Count: > 0 } values)
        {
            w.WritePropertyName("truncatedValues");
            w.WriteStartArray();
            foreach (var v in values)
            {
                w.WriteStartObject();
                w.WriteNumber("row", v.Row);
                w.WriteNumber("column", v.Column);
                w.WriteNumber("bytes", v.Bytes);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        if (r.Notice is { Length: > 0 } notice) w.WriteString("notice", notice);
        w.WriteNumber("elapsedMs", Math.Round(r.ElapsedMs, 3));
        w.WriteEndObject();
    }

    internal static void WriteValue(Utf8JsonWriter w, string? text, ValueKind kind)
    {
        if (text is null) { w.WriteNullValue(); return; }
        switch (kind)
        {
            case ValueKind.Boolean:
                w.WriteBooleanValue(text == "t");
                return;
            case ValueKind.Number when IsJsonNumber(text):
            case ValueKind.Json:
                try { w.WriteRawValue(text); return; }
                catch (JsonException) { break; } // e.g. NaN, Infinity: written as text below
                catch (ArgumentException) { break; }
        }
        w.WriteStringValue(text);
    }

    private static bool IsJsonNumber(string s) =>
        s.Length > 0 && (char.IsAsciiDigit(s[0]) || (s[0] == '-' && s.Length > 1 && char.IsAsciiDigit(s[1])));
}
