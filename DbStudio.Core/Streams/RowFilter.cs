// Evaluates a stream's PostgREST filters (?status=eq.open) against a changed row's JSON in process, with the
// column's type deciding how values compare (numbers as numbers, timestamps as instants, uuids case-insensitively),
// so no query is needed per event. Operators without a faithful in-process meaning are refused up front.
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Streams;

public sealed class RowFilter
{
    private readonly IReadOnlyList<Filter> _filters;
    private readonly TableInfo _table;

    private RowFilter(IReadOnlyList<Filter> filters, TableInfo table)
    {
        _filters = filters;
        _table = table;
    }


    /// <summary>Checks every column and operator; throws RestException (400) for what a stream cannot filter on.</summary>
    public static RowFilter Create(IReadOnlyList<Filter> filters, TableInfo table)
    {
        void Check(Filter f)
        {
            switch (f)
            {
                case LogicFilter g:
                    foreach (var c in g.Children) Check(c);
                    break;
                case ColumnFilter c:
                    var col = table.Find(c.Column) ?? throw new RestException(400, "42703",
                        $"column {table.Name}.{RestParser.Trim(c.Column)} does not exist", null,
                        $"Columns of \"{table.Name}\": {string.Join(", ", table.Columns.Select(x => x.Name))}");
                    if (c.Op is FilterOp.Match or FilterOp.Imatch or FilterOp.Cs or FilterOp.Cd or FilterOp.Ov)
                        throw RestException.BadRequest($"A stream cannot filter with \"{c.Op.ToString().ToLowerInvariant()}\"", null,
                            "Streams filter with eq, neq, gt, gte, lt, lte, like, ilike, in and is (also inside or/and/not)");
                    if (KindOf(col) == ValueKind.Json && c.Op is not (FilterOp.Is))
                        throw RestException.BadRequest($"A stream cannot compare the json column \"{col.Name}\"", null, "Filter on another column, or use is.null");
                    break;
            }
        }
        foreach (var f in filters) Check(f);
        return new RowFilter(filters, table);
    }

    public bool Matches(JsonElement row)
    {
        foreach (var f in _filters) if (!Eval(f, row)) return false;
        return true;
    }

    private bool Eval(Filter f, JsonElement row)
    {
        var result = f switch
        {
            LogicFilter g => g.IsOr ? g.Children.Any(c => Eval(c, row)) : g.Children.All(c => Eval(c, row)),
            ColumnFilter c => Leaf(c, row),
            _ => false,
        };
        return f.Negated ? !result : result;
    }

    private enum ValueKind { Number, Boolean, Text, Instant, Uuid, Json }

    private static ValueKind KindOf(ColumnInfo c) => c.TypeOid switch
    {
        20 or 21 or 23 or 26 or 700 or 701 or 1700 => ValueKind.Number,
        16 => ValueKind.Boolean,
        1114 or 1184 => ValueKind.Instant,
        2950 => ValueKind.Uuid,
        114 or 3802 => ValueKind.Json,
        _ => ValueKind.Text,
    };

    private bool Leaf(ColumnFilter f, JsonElement row)
    {
        var col = _table.Find(f.Column)!;
        var present = row.TryGetProperty(col.Name, out var v) && v.ValueKind != JsonValueKind.Null;
        if (f.Op == FilterOp.Is)
            return f.Value switch
            {
                "null" => !present,
                "not_null" => present,
                "true" => present && v.ValueKind == JsonValueKind.True,
                "false" => present && v.ValueKind == JsonValueKind.False,
                _ => !present, // unknown
            };
        if (!present) return false; // SQL: a comparison with NULL is not true
        var kind = KindOf(col);
        switch (f.Op)
        {
            case FilterOp.In: return f.Values!.Any(x => Compare(kind, v, x) == 0);
            case FilterOp.Like: return Like(Text(v), f.Value ?? "", false);
            case FilterOp.Ilike: return Like(Text(v), f.Value ?? "", true);
        }
        var cmp = Compare(kind, v, f.Value ?? "");
        if (cmp is null) return false;
        return f.Op switch
        {
            FilterOp.Eq => cmp == 0,
            FilterOp.Neq => cmp != 0,
            FilterOp.Gt => cmp > 0,
            FilterOp.Gte => cmp >= 0,
            FilterOp.Lt => cmp < 0,
            FilterOp.Lte => cmp <= 0,
            _ => false,
        };
    }

    private static string Text(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();

    /// <summary>Row value against filter text; null when they cannot be compared (as PostgreSQL would refuse the cast).</summary>
    private static int? Compare(ValueKind kind, JsonElement v, string value)
    {
        switch (kind)
        {
            case ValueKind.Number:
                if (v.ValueKind == JsonValueKind.Number && v.TryGetDecimal(out var a)
                    && decimal.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var b)) return a.CompareTo(b);
                if (double.TryParse(Text(v), NumberStyles.Float, CultureInfo.InvariantCulture, out var da)
                    && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var db)) return da.CompareTo(db);
                return null;
            case ValueKind.Boolean:
                bool? parsed = value.ToLowerInvariant() switch
                {
                    "t" or "true" or "yes" or "on" or "1" => true,
                    "f" or "false" or "no" or "off" or "0" => false,
                    _ => null,
                };
                return parsed is null ? null : (v.ValueKind == JsonValueKind.True).CompareTo(parsed.Value);
            case ValueKind.Instant:
                return DateTimeOffset.TryParse(Text(v), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ta)
                    && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var tb)
                    ? ta.CompareTo(tb) : null;
            case ValueKind.Uuid:
                return Guid.TryParse(Text(v), out var ga) && Guid.TryParse(value, out var gb) ? ga.CompareTo(gb) : null;
            default:
                return string.CompareOrdinal(Text(v), value);
        }
    }

    /// <summary>SQL LIKE (% and _, backslash escapes); PostgREST also accepts * for %.</summary>
    private static bool Like(string text, string pattern, bool ignoreCase)
    {
        var re = new System.Text.StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var ch = pattern[i];
            if (ch == '\\' && i + 1 < pattern.Length) re.Append(Regex.Escape(pattern[++i].ToString()));
            else if (ch is '%' or '*') re.Append(".*");
            else if (ch == '_') re.Append('.');
            else re.Append(Regex.Escape(ch.ToString()));
        }
        re.Append('$');
        return Regex.IsMatch(text, re.ToString(), (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None) | RegexOptions.Singleline | RegexOptions.CultureInvariant,
            TimeSpan.FromMilliseconds(50));
    }
}
