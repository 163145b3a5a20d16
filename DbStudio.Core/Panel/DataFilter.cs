// The Data tab's filter: several conditions, all (AND) or any (OR) of them, each a column, a REST operator (every one the
// API has, optionally negated) and a value — REST filters underneath, so a filter means the same in the panel and the
// API. It travels in the page's URL as `where=column.operator.value` (PostgREST's own spelling) and `any=1`.
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

public sealed record DataFilter(IReadOnlyList<TableBrowser.SimpleFilter> Conditions, bool Any)
{
    internal Filter ToFilter() => Conditions.Count == 1 ? Conditions[0].ToFilter()
        : new LogicFilter(Any, [.. Conditions.Select(c => c.ToFilter())], false);

    /// <summary>The conditions as the URL's <c>where</c> values: <c>column.operator.value</c>.</summary>
    public IEnumerable<string> ToQuery() => Conditions.Select(c => $"{c.Column}.{c.Operator}{(TakesValue(c.Operator) ? "." + c.Value : "")}");

    /// <summary>Reads the URL's <c>where</c> values back; null when there are none or one is not a known operator.</summary>
    public static DataFilter? FromQuery(IEnumerable<string> where, bool any)
    {
        var conditions = new List<TableBrowser.SimpleFilter>();
        foreach (var w in where)
        {
            // The column is what comes before the first dot that starts a known operator.
            TableBrowser.SimpleFilter? found = null;
            for (var dot = w.IndexOf('.'); dot > 0 && found is null; dot = w.IndexOf('.', dot + 1))
            {
                var rest = w[(dot + 1)..];
                var op = TableBrowser.SimpleFilter.Operators.Select(o => o.Op)
                    .Where(o => rest == o || (TakesValue(o) && rest.StartsWith(o + ".", StringComparison.Ordinal)))
                    .OrderByDescending(o => o.Length).FirstOrDefault();
                if (op is not null) found = new(w[..dot], op, TakesValue(op) ? rest[Math.Min(rest.Length, op.Length + 1)..] : null);
            }
            if (found is null) return null;
            conditions.Add(found);
        }
        return conditions.Count == 0 ? null : new DataFilter(conditions, any);
    }

    /// <summary>Whether the operator takes a value (is NULL and is not NULL do not).</summary>
    public static bool TakesValue(string op) => !op.EndsWith("is.null", StringComparison.Ordinal);
}

/// <summary>One condition of the filter being written in the Data tab (not yet applied).</summary>
public sealed class FilterDraft
{
    public string? Column { get; set; }
    public string Op { get; set; } = "eq";
    public string? Value { get; set; }
    /// <summary>The value the condition came with (from a URL or a followed reference): what its box shows.</summary>
    public string? Shown { get; init; }
}
