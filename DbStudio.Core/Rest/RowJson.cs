// Writes rows as JSON in .NET for rows whose every output column has a type with a direct JSON form: numbers,
// booleans, strings and uuids arrive in PostgreSQL's binary format and go straight into a Utf8JsonWriter; numeric,
// timestamps and a few others arrive as PostgreSQL's text and are placed as JSON numbers or strings. PostgreSQL then
// only sends the values (no per-row row_to_json), which is where the time of a page read went. Arrays, composites,
// char(n) and other types keep row_to_json. Output matches row_to_json's (RowJsonParityTests).
using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DbStudio.Core.Catalog;
using Npgsql;

namespace DbStudio.Core.Rest;

/// <summary>How one output column is read and written.</summary>
public enum JsonKind
{
    Int16, Int32, Int64, Float4, Float8, Boolean, String, Uuid,
    /// <summary>json/jsonb, placed as it is.</summary>
    Json,
    /// <summary>Selected as ::text; a JSON number when it is one (NaN stays a string, as in row_to_json).</summary>
    NumberText,
    /// <summary>Selected as ::text; "2024-01-02 03:04:05+00" written as "2024-01-02T03:04:05+00:00".</summary>
    TimestampText,
    /// <summary>Selected as ::text and written as a string (date, time, interval, bytea).</summary>
    StringText,
}

public sealed record PlainColumn(string Name, JsonKind Kind)
{
    /// <summary>Whether the SELECT list casts the value to text for this kind.</summary>
    public bool SelectAsText => Kind is JsonKind.NumberText or JsonKind.TimestampText or JsonKind.StringText;

    /// <summary>The property name, escaped once per request rather than once per row.</summary>
    public JsonEncodedText Key { get; } = JsonEncodedText.Encode(Name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping);
}

/// <summary>
/// A table's plain output columns, made once per catalog snapshot (a reload makes new TableInfo objects, and the entry
/// goes with the old one): each column's <see cref="PlainColumn"/> — its escaped JSON key — and the whole list and SELECT
/// list of `select=*`, which every request of the default shape would otherwise build again.
/// </summary>
internal sealed class PlainShapes
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TableInfo, PlainShapes> Cache = new();

    public static PlainShapes Of(TableInfo table) => Cache.GetValue(table, static t => new PlainShapes(t));

    private readonly Dictionary<string, PlainColumn> _byName = new(StringComparer.Ordinal);

    /// <summary>Every column of the table in order, or null when one has no plain kind.</summary>
    public IReadOnlyList<PlainColumn>? Star { get; }

    private string? _starSelect;

    private PlainShapes(TableInfo table)
    {
        var all = new List<PlainColumn>(table.Columns.Count);
        foreach (var c in table.Columns)
            if (RowJson.KindOf(c.TypeOid) is { } kind) all.Add(_byName[c.Name] = new PlainColumn(c.Name, kind));
        Star = all.Count == table.Columns.Count ? all : null;
    }

    /// <summary>The column's plain output under its own name, or null when it has no plain kind.</summary>
    public PlainColumn? Column(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The SELECT list of <see cref="Star"/>, made by <paramref name="make"/> the first time.</summary>
    public string StarSelect(Func<IReadOnlyList<PlainColumn>, string> make) => _starSelect ??= make(Star!);
}

public static class RowJson
{
    /// <summary>The kind for a column type, or null when row_to_json must do it (arrays, composites, char(n), …).</summary>
    public static JsonKind? KindOf(uint typeOid) => typeOid switch
    {
        PgType.Int2 => JsonKind.Int16,
        PgType.Int4 => JsonKind.Int32,
        PgType.Int8 => JsonKind.Int64,
        PgType.Float4 => JsonKind.Float4,
        PgType.Float8 => JsonKind.Float8,
        PgType.Bool => JsonKind.Boolean,
        PgType.Text or PgType.Varchar or PgType.Name => JsonKind.String,
        PgType.Uuid => JsonKind.Uuid,
        PgType.Json or PgType.Jsonb => JsonKind.Json,
        PgType.Numeric or PgType.Oid => JsonKind.NumberText,
        PgType.Timestamp or PgType.Timestamptz => JsonKind.TimestampText,
        PgType.Date or PgType.Time or PgType.Timetz or PgType.Interval or PgType.Bytea => JsonKind.StringText,
        _ => null,
    };

    /// <summary>The kind for an allowed select cast (see RestParser).</summary>
    public static JsonKind? KindOfCast(string cast) => cast switch
    {
        "int2" or "smallint" => JsonKind.Int16,
        "int" or "int4" or "integer" => JsonKind.Int32,
        "int8" or "bigint" => JsonKind.Int64,
        "float4" or "real" => JsonKind.Float4,
        "float8" or "double precision" => JsonKind.Float8,
        "bool" or "boolean" => JsonKind.Boolean,
        "text" or "varchar" => JsonKind.String,
        "uuid" => JsonKind.Uuid,
        "json" or "jsonb" => JsonKind.Json,
        "numeric" or "decimal" => JsonKind.NumberText,
        "timestamp" or "timestamptz" => JsonKind.TimestampText,
        "date" or "time" or "timetz" or "interval" or "bytea" => JsonKind.StringText,
        _ => null, // char: padding differs between text and JSON forms
    };

    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    public static Utf8JsonWriter CreateWriter(IBufferWriter<byte> output) => new(output, Options);

    /// <summary>Writes column <paramref name="i"/> of the reader's current row (read in column order).</summary>
    public static void WriteValue(Utf8JsonWriter w, NpgsqlDataReader r, int i, JsonKind kind)
    {
        if (r.IsDBNull(i)) { w.WriteNullValue(); return; }
        switch (kind)
        {
            case JsonKind.Int16: w.WriteNumberValue(r.GetInt16(i)); return;
            case JsonKind.Int32: w.WriteNumberValue(r.GetInt32(i)); return;
            case JsonKind.Int64: w.WriteNumberValue(r.GetInt64(i)); return;
            case JsonKind.Float4:
                var f = r.GetFloat(i);
                if (float.IsFinite(f)) w.WriteNumberValue(f);
                else w.WriteStringValue(NonFinite(f));
                return;
            case JsonKind.Float8:
                var d = r.GetDouble(i);
                if (double.IsFinite(d)) w.WriteNumberValue(d);
                else w.WriteStringValue(NonFinite(d));
                return;
            case JsonKind.Boolean: w.WriteBooleanValue(r.GetBoolean(i)); return;
            case JsonKind.String: w.WriteStringValue(r.GetString(i)); return;
            case JsonKind.Uuid: w.WriteStringValue(r.GetGuid(i)); return;
            case JsonKind.Json: w.WriteRawValue(r.GetString(i), skipInputValidation: true); return;
            case JsonKind.NumberText:
                var n = r.GetString(i);
                if (IsJsonNumber(n)) w.WriteRawValue(n, skipInputValidation: true);
                else w.WriteStringValue(n);
                return;
            case JsonKind.TimestampText: w.WriteStringValue(IsoTimestamp(r.GetString(i))); return;
            default: w.WriteStringValue(r.GetString(i)); return;
        }
    }

    // PostgreSQL's JSON for these is the float's own text, quoted.
    private static string NonFinite(double v) => double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";

    /// <summary>"2024-01-02 03:04:05.5+00" → "2024-01-02T03:04:05.5+00:00", as PostgreSQL's JSON output writes it.</summary>
    internal static string IsoTimestamp(string text)
    {
        if (text.Length < 19 || text[10] != ' ' || !char.IsAsciiDigit(text[0])) return text; // infinity, BC dates
        var sb = new StringBuilder(text.Length + 3).Append(text, 0, 10).Append('T').Append(text, 11, text.Length - 11);
        var sign = Math.Max(text.LastIndexOf('+'), text.LastIndexOf('-'));
        if (sign > 18 && sb.Length - sign == 3) sb.Append(":00"); // "+HH" → "+HH:00"
        return sb.ToString();
    }

    private static bool IsJsonNumber(string s)
    {
        var i = 0;
        if (s.Length > 0 && s[0] == '-') i++;
        if (i >= s.Length || !char.IsAsciiDigit(s[i])) return false;
        if (s[i] == '0' && i + 1 < s.Length && char.IsAsciiDigit(s[i + 1])) return false;
        foreach (var c in s.AsSpan(i)) if (!(char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-')) return false;
        return true;
    }
}
