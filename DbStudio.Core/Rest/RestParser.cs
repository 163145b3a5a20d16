// Stage 1: parses a PostgREST-dialect request (query string grammar and headers) into a RestRequest.
// Nothing here touches SQL: names are only checked against the table later, values only bound as parameters.
namespace DbStudio.Core.Rest;

public static class RestParser
{
    public const string SingularMediaType = "application/vnd.pgrst.object+json";
    private static readonly HashSet<string> Reserved = ["select", "order", "limit", "offset", "columns", "on_conflict", "apikey", "access_token", "last_event_id"];

    public static RestRequest Parse(RestVerb verb, string table, IEnumerable<KeyValuePair<string, string>> query,
        IReadOnlyList<string> prefer, string? range, string? accept, string? body)
    {
        var select = (IReadOnlyList<SelectItem>)[new SelectItem("*", null, null)];
        var filters = new List<Filter>();
        IReadOnlyList<OrderTerm> order = [];
        long? limit = null;
        long offset = 0;
        IReadOnlyList<string>? columns = null, onConflict = null;
        foreach (var (key, value) in query)
        {
            switch (key)
            {
                case "select": select = ParseSelect(value); break;
                case "order": order = ParseOrder(value); break;
                case "limit": limit = NonNegative(key, value); break;
                case "offset": offset = NonNegative(key, value); break;
                case "columns": columns = ParseNameList(key, value); break;
                case "on_conflict": onConflict = ParseNameList(key, value); break;
                case "apikey" or "access_token" or "last_event_id": break;
                case "or" or "and" or "not.or" or "not.and":
                    filters.Add(ParseLogic(key, value));
                    break;
                default:
                    if (key.Length == 0) throw RestException.BadRequest("Empty query parameter name");
                    filters.Add(ParseColumnFilter(key, value));
                    break;
            }
        }

        var prefs = ParsePrefer(prefer);
        if (range is { Length: > 0 })
        {
            var (from, to) = ParseRange(range);
            offset = Math.Max(offset, from);
            if (to is long end) limit = Math.Min(limit ?? long.MaxValue, end - from + 1);
        }
        var singular = false;
        if (accept is { Length: > 0 })
        {
            singular = accept.Contains(SingularMediaType, StringComparison.OrdinalIgnoreCase);
            if (!singular && !AcceptsJson(accept))
                throw new RestException(406, "PGRST107", $"None of these media types are available: {accept}");
        }
        return new RestRequest
        {
            Verb = verb, Table = table, Select = select, Filters = filters, Order = order, Limit = limit, Offset = offset,
            Columns = columns, OnConflict = onConflict, Count = prefs.Count, Return = prefs.Return,
            Resolution = prefs.Resolution, MissingDefault = prefs.MissingDefault, Singular = singular, Body = body,
        };
    }

    private static bool AcceptsJson(string accept) =>
        accept.Split(',').Select(a => a.Split(';')[0].Trim()).Any(t =>
            t is "*/*" or "application/*" or "application/json" or "application/openapi+json"
            || t.Equals("application/json", StringComparison.OrdinalIgnoreCase));

    private static long NonNegative(string key, string value) =>
        long.TryParse(value, System.Globalization.NumberStyles.None, null, out var n)
            ? n : throw RestException.BadRequest($"\"{key}\" must be a non-negative integer", $"got \"{Trim(value)}\"");

    // ---- select ---------------------------------------------------------------------------------------

    private static readonly HashSet<string> CastTypes =
    [
        "text", "varchar", "char", "int", "int2", "int4", "int8", "integer", "smallint", "bigint", "numeric", "decimal",
        "float4", "float8", "real", "double precision", "bool", "boolean", "json", "jsonb", "date", "time", "timetz",
        "timestamp", "timestamptz", "uuid", "interval", "bytea",
    ];

    public static IReadOnlyList<SelectItem> ParseSelect(string value)
    {
        var items = new List<SelectItem>();
        foreach (var raw in SplitTopLevel(value, ','))
        {
            var part = raw.Trim();
            if (part.Length == 0) throw RestException.BadRequest("\"select\" has an empty item", $"select={Trim(value)}");
            if (part.Contains('(') || part.StartsWith("...", StringComparison.Ordinal))
                throw RestException.BadRequest("Embedded resources are not supported", $"select item \"{Trim(part)}\"",
                    "Select columns of this table only, e.g. select=id,name");
            string? cast = null;
            var castAt = part.IndexOf("::", StringComparison.Ordinal);
            if (castAt >= 0)
            {
                cast = part[(castAt + 2)..].Trim().ToLowerInvariant();
                part = part[..castAt];
                if (!CastTypes.Contains(cast))
                    throw RestException.BadRequest($"Cannot cast to \"{Trim(cast)}\"", null,
                        "Casts to " + string.Join(", ", CastTypes.Order()) + " are supported");
            }
            string? alias = null;
            var colon = part.IndexOf(':');
            if (colon >= 0)
            {
                alias = part[..colon].Trim();
                part = part[(colon + 1)..];
                if (alias.Length == 0) throw RestException.BadRequest("Empty alias in \"select\"");
            }
            var column = Unquote(part.Trim());
            if (column.Length == 0) throw RestException.BadRequest("Empty column name in \"select\"");
            if (column == "*" && (alias is not null || cast is not null))
                throw RestException.BadRequest("\"*\" cannot have an alias or a cast");
            items.Add(new SelectItem(column, alias, cast));
        }
        return items;
    }

    // ---- order ----------------------------------------------------------------------------------------

    public static IReadOnlyList<OrderTerm> ParseOrder(string value)
    {
        var terms = new List<OrderTerm>();
        foreach (var raw in SplitTopLevel(value, ','))
        {
            var parts = raw.Trim().Split('.');
            var column = Unquote(parts[0]);
            if (column.Length == 0) throw RestException.BadRequest("Empty column in \"order\"", $"order={Trim(value)}");
            var desc = false;
            bool? nullsFirst = null;
            foreach (var mod in parts.Skip(1))
            {
                switch (mod)
                {
                    case "asc": desc = false; break;
                    case "desc": desc = true; break;
                    case "nullsfirst": nullsFirst = true; break;
                    case "nullslast": nullsFirst = false; break;
                    default: throw RestException.BadRequest($"Unknown order modifier \"{Trim(mod)}\"", null,
                        "Use asc, desc, nullsfirst or nullslast, e.g. order=created_at.desc.nullslast");
                }
            }
            terms.Add(new OrderTerm(column, desc, nullsFirst));
        }
        return terms;
    }

    private static IReadOnlyList<string> ParseNameList(string key, string value)
    {
        var names = SplitTopLevel(value, ',').Select(n => Unquote(n.Trim())).ToList();
        if (names.Count == 0 || names.Any(n => n.Length == 0)) throw RestException.BadRequest($"\"{key}\" has an empty column name");
        return names;
    }

    // ---- filters --------------------------------------------------------------------------------------

    /// <summary>`col=op.value` or `col=not.op.value`.</summary>
    public static ColumnFilter ParseColumnFilter(string column, string expr)
    {
        var negated = false;
        if (expr.StartsWith("not.", StringComparison.Ordinal)) { negated = true; expr = expr[4..]; }
        var dot = expr.IndexOf('.');
        if (dot < 0)
            throw RestException.BadRequest($"\"{Trim(expr)}\" is not a filter", $"{Trim(column)}={Trim(expr)}",
                "Write filters as column=operator.value, e.g. id=eq.1");
        var opName = expr[..dot];
        var value = expr[(dot + 1)..];
        var op = opName switch
        {
            "eq" => FilterOp.Eq, "neq" => FilterOp.Neq, "gt" => FilterOp.Gt, "gte" => FilterOp.Gte, "lt" => FilterOp.Lt,
            "lte" => FilterOp.Lte, "like" => FilterOp.Like, "ilike" => FilterOp.Ilike, "match" => FilterOp.Match,
            "imatch" => FilterOp.Imatch, "in" => FilterOp.In, "is" => FilterOp.Is, "cs" => FilterOp.Cs, "cd" => FilterOp.Cd,
            "ov" => FilterOp.Ov,
            _ => throw RestException.BadRequest($"Unknown operator \"{Trim(opName)}\"", $"{Trim(column)}={Trim(expr)}",
                "Operators: eq, neq, gt, gte, lt, lte, like, ilike, match, imatch, in, is, cs, cd, ov (each may follow not.)"),
        };
        column = Unquote(column);
        switch (op)
        {
            case FilterOp.In:
                if (!value.StartsWith('(') || !value.EndsWith(')'))
                    throw RestException.BadRequest("\"in\" takes a list in parentheses", null, "e.g. id=in.(1,2,3)");
                var inner = value[1..^1];
                var values = inner.Length == 0 ? [] : SplitTopLevel(inner, ',').Select(v => Unquote(v.Trim())).ToList();
                return new ColumnFilter(column, op, null, values, negated);
            case FilterOp.Is:
                var v = value.ToLowerInvariant();
                if (v is not ("null" or "true" or "false" or "unknown" or "not_null"))
                    throw RestException.BadRequest($"\"is\" takes null, true, false or unknown, not \"{Trim(value)}\"");
                return new ColumnFilter(column, op, v, null, negated);
            case FilterOp.Like or FilterOp.Ilike:
                return new ColumnFilter(column, op, Unquote(value).Replace('*', '%'), null, negated);
            default:
                return new ColumnFilter(column, op, Unquote(value), null, negated);
        }
    }

    /// <summary>`or=(a.eq.1,and(b.gt.2,c.is.null))` with `not.` before any group or condition.</summary>
    public static LogicFilter ParseLogic(string key, string value)
    {
        var negated = key.StartsWith("not.", StringComparison.Ordinal);
        var isOr = key.EndsWith("or", StringComparison.Ordinal);
        if (!value.StartsWith('(') || !value.EndsWith(')'))
            throw RestException.BadRequest($"\"{key}\" takes a list in parentheses", $"{key}={Trim(value)}", "e.g. or=(id.eq.1,name.eq.x)");
        return new LogicFilter(isOr, ParseLogicItems(value[1..^1], depth: 1), negated);
    }

    private static List<Filter> ParseLogicItems(string inner, int depth)
    {
        if (depth > 16) throw RestException.BadRequest("Logic filters are nested too deeply");
        var items = new List<Filter>();
        foreach (var raw in SplitTopLevel(inner, ','))
        {
            var item = raw.Trim();
            if (item.Length == 0) throw RestException.BadRequest("Empty condition in a logic filter");
            var negated = false;
            var body = item;
            if (body.StartsWith("not.", StringComparison.Ordinal)) { negated = true; body = body[4..]; }
            if ((body.StartsWith("and(", StringComparison.Ordinal) || body.StartsWith("or(", StringComparison.Ordinal)) && body.EndsWith(')'))
            {
                var isOr = body.StartsWith("or(", StringComparison.Ordinal);
                var open = body.IndexOf('(');
                items.Add(new LogicFilter(isOr, ParseLogicItems(body[(open + 1)..^1], depth + 1), negated));
                continue;
            }
            // column.op.value or column.not.op.value (a `not.` before the column negates as well)
            var dot = FindUnquotedDot(body);
            if (dot < 0) throw RestException.BadRequest($"\"{Trim(item)}\" is not a condition", null, "e.g. or=(id.eq.1,name.eq.x)");
            var f = ParseColumnFilter(body[..dot], body[(dot + 1)..]);
            items.Add(negated ? f with { Negated = !f.Negated } : f);
        }
        return items;
    }

    private static int FindUnquotedDot(string s)
    {
        var inQuotes = false;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '"') inQuotes = !inQuotes;
            else if (s[i] == '.' && !inQuotes) return i;
        }
        return -1;
    }

    // ---- headers --------------------------------------------------------------------------------------

    private sealed record Prefs(CountPref Count, ReturnPref Return, ResolutionPref Resolution, bool MissingDefault);

    private static Prefs ParsePrefer(IReadOnlyList<string> headers)
    {
        var count = CountPref.None;
        var ret = ReturnPref.Default;
        var resolution = ResolutionPref.None;
        var missingDefault = false;
        foreach (var token in headers.SelectMany(h => h.Split(',')).Select(t => t.Trim().ToLowerInvariant()))
        {
            switch (token)
            {
                case "count=exact": count = CountPref.Exact; break;
                case "count=planned": count = CountPref.Planned; break;
                case "count=estimated": count = CountPref.Estimated; break;
                case "return=minimal": ret = ReturnPref.Minimal; break;
                case "return=representation": ret = ReturnPref.Representation; break;
                case "return=headers-only": ret = ReturnPref.HeadersOnly; break;
                case "resolution=merge-duplicates": resolution = ResolutionPref.MergeDuplicates; break;
                case "resolution=ignore-duplicates": resolution = ResolutionPref.IgnoreDuplicates; break;
                case "missing=default": missingDefault = true; break;
            }
        }
        return new Prefs(count, ret, resolution, missingDefault);
    }

    private static (long From, long? To) ParseRange(string range)
    {
        var spec = range.Trim();
        if (spec.StartsWith("items=", StringComparison.OrdinalIgnoreCase)) spec = spec[6..];
        var dash = spec.IndexOf('-');
        if (dash <= 0 || !long.TryParse(spec[..dash], out var from) || from < 0)
            throw new RestException(416, "PGRST103", "Requested range not satisfiable", $"Range: {Trim(range)}");
        var toText = spec[(dash + 1)..];
        if (toText.Length == 0) return (from, null);
        if (!long.TryParse(toText, out var to) || to < from)
            throw new RestException(416, "PGRST103", "Requested range not satisfiable", $"Range: {Trim(range)}");
        return (from, to);
    }

    // ---- lexical helpers ------------------------------------------------------------------------------

    /// <summary>Splits at <paramref name="sep"/> outside parentheses, braces and double quotes.</summary>
    internal static List<string> SplitTopLevel(string s, char sep)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        var inQuotes = false;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (inQuotes)
            {
                if (c == '\\' && i + 1 < s.Length) { i++; continue; }
                if (c == '"') inQuotes = false;
                continue;
            }
            switch (c)
            {
                case '"': inQuotes = true; break;
                case '(' or '{' or '[': depth++; break;
                case ')' or '}' or ']':
                    if (--depth < 0) throw RestException.BadRequest("Unbalanced parentheses", Trim(s));
                    break;
                default:
                    if (c == sep && depth == 0) { parts.Add(s[start..i]); start = i + 1; }
                    break;
            }
        }
        if (inQuotes || depth != 0) throw RestException.BadRequest("Unbalanced quotes or parentheses", Trim(s));
        parts.Add(s[start..]);
        return parts;
    }

    /// <summary>"a \"b\"" → a "b"; anything else as is.</summary>
    internal static string Unquote(string s)
    {
        if (s.Length >= 2 && s[0] == '"' && s[^1] == '"')
            return s[1..^1].Replace("\\\"", "\"").Replace("\\\\", "\\");
        return s;
    }

    /// <summary>Echoes user input in messages without making them huge.</summary>
    public static string Trim(string s) => s.Length <= 120 ? s : s[..120] + "…";
}
