// Stage 1: parses a PostgREST-dialect request (query string grammar and headers) into a RestRequest.
// Nothing here touches SQL: names are only checked against the table later, values only bound as parameters.
namespace DbStudio.Core.Rest;

public static class RestParser
{
    public const string SingularMediaType = "application/vnd.pgrst.object+json";
    private static readonly HashSet<string> Reserved = ["select", "order", "limit", "offset", "columns", "on_conflict", "apikey", "access_token", "last_event_id"];

    /// <summary>No select=: every column (shared by every such request; nothing changes it).</summary>
    private static readonly IReadOnlyList<SelectItem> AllColumns = [new SelectItem("*", null, null)];

    public static RestRequest Parse(RestVerb verb, string table, IEnumerable<KeyValuePair<string, string>> query,
        IReadOnlyList<string> prefer, string? range, string? accept, string? body)
    {
        var select = AllColumns;
        IReadOnlyList<Embed> embeds = [];
        Dictionary<string, EmbedParams>? nested = null;
        var filters = new List<Filter>();
        IReadOnlyList<OrderTerm> order = [];
        long? limit = null;
        long offset = 0;
        IReadOnlyList<string>? columns = null, onConflict = null;
        foreach (var (key, value) in query)
        {
            // Names become quoted identifiers: PostgreSQL has no NUL in a name.
            if (key.Contains('\0') || key is "select" or "order" or "columns" or "on_conflict" && value.Contains('\0'))
                throw RestException.BadRequest("A name in the query string contains a NUL character");
            switch (key)
            {
                case "select": (select, embeds) = ParseSelectTree(value); break;
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
                    if (EmbeddedKey(key) is var (path, name))
                    {
                        var pathKey = string.Join('.', path);
                        nested ??= [];
                        if (!nested.TryGetValue(pathKey, out var np)) nested[pathKey] = np = new EmbedParams(path);
                        np.Add(name, value);
                    }
                    else filters.Add(ParseColumnFilter(key, value));
                    break;
            }
        }
        if (nested is { Count: > 0 }) embeds = AttachParams(embeds, nested, []);

        var prefs = ParsePrefer(prefer);
        if (range is { Length: > 0 })
        {
            var (from, to) = ParseRange(range);
            offset = Math.Max(offset, from);
            // (items=0-9223372036854775807: to the end — not a count that overflows into a negative LIMIT)
            if (to is long end) limit = Math.Min(limit ?? long.MaxValue, end - from == long.MaxValue ? long.MaxValue : end - from + 1);
        }
        var singular = false;
        var csv = false;
        if (accept is { Length: > 0 })
        {
            singular = accept.Contains(SingularMediaType, StringComparison.OrdinalIgnoreCase);
            csv = !singular && !AcceptsJson(accept) && MediaTypes(accept).Contains("text/csv");
            if (!singular && !csv && !AcceptsJson(accept))
                throw new RestException(406, "PGRST107", $"None of these media types are available: {accept}");
        }
        return new RestRequest
        {
            Verb = verb, Table = table, Select = select, Embeds = embeds, Filters = filters, Order = order, Limit = limit, Offset = offset,
            Columns = columns, OnConflict = onConflict, Count = prefs.Count, Return = prefs.Return,
            Resolution = prefs.Resolution, MissingDefault = prefs.MissingDefault, Singular = singular, Body = body,
            Csv = csv, Rollback = prefs.Rollback, CommitAsked = prefs.Commit,
        };
    }

    private static IEnumerable<string> MediaTypes(string accept) =>
        accept.Split(',').Select(a => a.Split(';')[0].Trim().ToLowerInvariant());

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

    /// <summary>The columns of `select=`; refuses embedded resources (see <see cref="ParseSelectTree"/>).</summary>
    public static IReadOnlyList<SelectItem> ParseSelect(string value)
    {
        var (items, embeds) = ParseSelectTree(value);
        if (embeds.Count > 0) throw RestException.BadRequest("Embedded resources are not supported here", $"select={Trim(value)}");
        return items;
    }

    /// <summary>`select=` as PostgREST reads it: columns (alias, cast, JSON path) and embedded resources, nested.</summary>
    public static (IReadOnlyList<SelectItem> Items, IReadOnlyList<Embed> Embeds) ParseSelectTree(string value) => ParseSelectLevel(value, 0);

    private static (IReadOnlyList<SelectItem>, IReadOnlyList<Embed>) ParseSelectLevel(string value, int depth)
    {
        if (depth > 8) throw RestException.BadRequest("Embedded resources are nested too deeply", null, "At most 8 levels");
        var items = new List<SelectItem>();
        var embeds = new List<Embed>();
        if (depth > 0 && value.Trim().Length == 0) return (items, embeds); // relation(): only filters
        foreach (var raw in SplitTopLevel(value, ','))
        {
            var part = raw.Trim();
            if (part.Length == 0) throw RestException.BadRequest("\"select\" has an empty item", $"select={Trim(value)}");
            var open = TopLevelParen(part);
            if (open >= 0) { embeds.Add(ParseEmbed(part, open, depth)); continue; }
            if (part.StartsWith("...", StringComparison.Ordinal))
                throw RestException.BadRequest("A spread needs an embedded resource", $"select item \"{Trim(part)}\"", "e.g. select=id,...author(name)");
            items.Add(ParseField(part));
        }
        return (items, embeds);
    }

    /// <summary>Index of the first '(' outside quotes, or -1.</summary>
    private static int TopLevelParen(string s)
    {
        var inQuotes = false;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '"') inQuotes = !inQuotes;
            else if (s[i] == '(' && !inQuotes) return i;
        }
        return -1;
    }

    /// <summary>`alias:relation!hint!inner(items)` or `...relation!hint(items)`.</summary>
    private static Embed ParseEmbed(string part, int open, int depth)
    {
        if (!part.EndsWith(')'))
            throw RestException.BadRequest($"\"{Trim(part)}\" is not an embedded resource", null, "e.g. select=*,author:authors(name)");
        var head = part[..open].Trim();
        var spread = head.StartsWith("...", StringComparison.Ordinal);
        if (spread) head = head[3..];
        string? alias = null;
        var colon = head.IndexOf(':');
        if (colon >= 0)
        {
            alias = Unquote(head[..colon].Trim());
            head = head[(colon + 1)..].Trim();
            if (alias.Length == 0) throw RestException.BadRequest("Empty alias in \"select\"");
            if (spread) throw RestException.BadRequest("A spread resource cannot have an alias", $"select item \"{Trim(part)}\"");
        }
        var bang = head.Split('!');
        var relation = Unquote(bang[0].Trim());
        if (relation.Length == 0) throw RestException.BadRequest("Empty resource name in \"select\"", $"select item \"{Trim(part)}\"");
        string? hint = null;
        var inner = false;
        if (bang.Length > 3) throw RestException.BadRequest($"Too many '!' in \"{Trim(head)}\"", null, "e.g. authors!fk_name!inner(name)");
        foreach (var p in bang.Skip(1).Select(b => Unquote(b.Trim())))
        {
            if (p == "inner") inner = true;
            else if (p == "left") inner = false;
            else if (p.Length == 0 || hint is not null)
                throw RestException.BadRequest($"\"{Trim(head)}\" is not a resource with a hint", null, "e.g. authors!fk_name!inner(name)");
            else hint = p;
        }
        var (items, embeds) = ParseSelectLevel(part[(open + 1)..^1], depth + 1);
        return new Embed(relation, alias, hint, inner) { Select = items, Embeds = embeds, Spread = spread };
    }

    private static SelectItem ParseField(string part)
    {
        string? cast = null;
        var castAt = part.LastIndexOf("::", StringComparison.Ordinal);
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
        if (colon >= 0 && colon < (part.IndexOf("->", StringComparison.Ordinal) is var arrow and >= 0 ? arrow : int.MaxValue))
        {
            alias = Unquote(part[..colon].Trim());
            part = part[(colon + 1)..];
            if (alias.Length == 0) throw RestException.BadRequest("Empty alias in \"select\"");
        }
        var (column, path) = ParseFieldPath(part.Trim(), "select");
        if (column.Length == 0) throw RestException.BadRequest("Empty column name in \"select\"");
        if (column == "*" && (alias is not null || cast is not null || path.Count > 0))
            throw RestException.BadRequest("\"*\" cannot have an alias, a cast or a JSON path");
        return new SelectItem(column, alias, cast) { Path = path };
    }

    /// <summary>`col`, `"a col"` or `col->a->>b`, `col->0`: the column and its JSON path.</summary>
    public static (string Column, IReadOnlyList<JsonStep> Path) ParseFieldPath(string field, string where)
    {
        var arrow = IndexOfArrow(field, 0);
        if (arrow < 0) return (Unquote(field), []);
        var column = Unquote(field[..arrow].Trim());
        var path = new List<JsonStep>();
        var i = arrow;
        while (i < field.Length)
        {
            var asText = string.CompareOrdinal(field, i, "->>", 0, 3) == 0;
            var start = i + (asText ? 3 : 2);
            var next = IndexOfArrow(field, start);
            var key = Unquote(field[start..(next < 0 ? field.Length : next)].Trim());
            if (key.Length == 0)
                throw RestException.BadRequest($"Empty key in the JSON path \"{Trim(field)}\"", $"in \"{where}\"", "e.g. data->a->>b");
            path.Add(new JsonStep(key, asText));
            if (next < 0) break;
            i = next;
        }
        if (path.Count > 16) throw RestException.BadRequest("JSON path is too long", Trim(field));
        return (column, path);
    }

    private static int IndexOfArrow(string s, int from)
    {
        var inQuotes = false;
        for (var i = from; i < s.Length - 1; i++)
        {
            if (s[i] == '"') inQuotes = !inQuotes;
            else if (!inQuotes && s[i] == '-' && s[i + 1] == '>') return i;
        }
        return -1;
    }

    // ---- parameters of embedded resources -------------------------------------------------------------

    /// <summary>What a request says about one embedded resource, by its path (`comments.author`).</summary>
    private sealed class EmbedParams(IReadOnlyList<string> path)
    {
        public IReadOnlyList<string> Path { get; } = path;
        public List<Filter> Filters { get; } = [];
        public IReadOnlyList<OrderTerm>? Order { get; private set; }
        public long? Limit { get; private set; }
        public long? Offset { get; private set; }

        public void Add(string name, string value)
        {
            var label = string.Join('.', Path) + "." + name;
            switch (name)
            {
                case "order": Order = ParseOrder(value); break;
                case "limit": Limit = NonNegative(label, value); break;
                case "offset": Offset = NonNegative(label, value); break;
                case "or" or "and" or "not.or" or "not.and": Filters.Add(ParseLogic(name, value)); break;
                default: Filters.Add(ParseColumnFilter(name, value)); break;
            }
        }
    }

    /// <summary>`comments.id` → (["comments"], "id"); `a.b.not.or` → (["a","b"], "not.or"); a plain column → null.</summary>
    private static (List<string> Path, string Name)? EmbeddedKey(string key)
    {
        var arrow = IndexOfArrow(key, 0);
        var head = arrow < 0 ? key : key[..arrow];
        var tail = arrow < 0 ? "" : key[arrow..];
        var segments = new List<string>();
        var inQuotes = false;
        var start = 0;
        for (var i = 0; i < head.Length; i++)
        {
            if (head[i] == '"') inQuotes = !inQuotes;
            else if (head[i] == '.' && !inQuotes) { segments.Add(head[start..i]); start = i + 1; }
        }
        segments.Add(head[start..]);
        if (segments.Count == 1) return null;
        var name = segments[^1];
        var take = segments.Count - 1;
        if (tail.Length == 0 && name is "or" or "and" && segments.Count > 2 && segments[^2] == "not") { name = "not." + name; take--; }
        var path = segments.Take(take).Select(Unquote).ToList();
        if (path.Any(p => p.Length == 0) || name.Length == 0)
            throw RestException.BadRequest($"\"{Trim(key)}\" is not a filter or parameter of an embedded resource", null, "e.g. comments.id=eq.1");
        return (path, name + tail);
    }

    private static IReadOnlyList<Embed> AttachParams(IReadOnlyList<Embed> embeds, Dictionary<string, EmbedParams> nested, List<string> at)
    {
        var result = new List<Embed>();
        foreach (var e in embeds)
        {
            var path = new List<string>(at) { e.Name };
            var key = string.Join('.', path);
            var updated = e with { Embeds = AttachParams(e.Embeds, nested, path) };
            if (nested.Remove(key, out var p))
                updated = updated with
                {
                    Filters = p.Filters, Order = p.Order ?? updated.Order, Limit = p.Limit ?? updated.Limit, Offset = p.Offset ?? updated.Offset,
                };
            result.Add(updated);
        }
        if (at.Count == 0 && nested.Count > 0)
        {
            var missing = nested.Values.First().Path;
            throw new RestException(400, "PGRST108", $"'{Trim(string.Join('.', missing))}' is not an embedded resource in this request", null,
                $"Verify that '{Trim(missing[^1])}' is included in the 'select' query parameter.");
        }
        return result;
    }

    // ---- order ----------------------------------------------------------------------------------------

    public static IReadOnlyList<OrderTerm> ParseOrder(string value)
    {
        var terms = new List<OrderTerm>();
        foreach (var raw in SplitTopLevel(value, ','))
        {
            // The modifiers come last: field[.asc|.desc][.nullsfirst|.nullslast]; the field may hold a JSON path.
            var field = raw.Trim();
            var desc = false;
            bool? nullsFirst = null;
            var arrow = IndexOfArrow(field, 0);
            while (true)
            {
                var dot = field.LastIndexOf('.');
                if (dot < 0 || dot < arrow || field.EndsWith('"')) break;
                var mod = field[(dot + 1)..];
                if (mod is "asc" or "desc") desc = mod == "desc";
                else if (mod is "nullsfirst" or "nullslast") nullsFirst = mod == "nullsfirst";
                else if (arrow < 0)
                    throw RestException.BadRequest($"Unknown order modifier \"{Trim(mod)}\"", null,
                        "Use asc, desc, nullsfirst or nullslast, e.g. order=created_at.desc.nullslast");
                else break;
                field = field[..dot];
            }
            var (column, path) = ParseFieldPath(field, "order");
            if (column.Length == 0) throw RestException.BadRequest("Empty column in \"order\"", $"order={Trim(value)}");
            terms.Add(new OrderTerm(column, desc, nullsFirst) { Path = path });
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

    /// <summary>`col=op.value`, `col=not.op.value`, `col=op(any).{a,b}`, `col=fts(english).word`; col may hold a JSON path.</summary>
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
        string? argument = null;
        var paren = opName.IndexOf('(');
        if (paren > 0 && opName.EndsWith(')'))
        {
            argument = opName[(paren + 1)..^1];
            opName = opName[..paren];
        }
        var op = opName switch
        {
            "eq" => FilterOp.Eq, "neq" => FilterOp.Neq, "gt" => FilterOp.Gt, "gte" => FilterOp.Gte, "lt" => FilterOp.Lt,
            "lte" => FilterOp.Lte, "like" => FilterOp.Like, "ilike" => FilterOp.Ilike, "match" => FilterOp.Match,
            "imatch" => FilterOp.Imatch, "in" => FilterOp.In, "is" => FilterOp.Is, "cs" => FilterOp.Cs, "cd" => FilterOp.Cd,
            "ov" => FilterOp.Ov, "fts" => FilterOp.Fts, "plfts" => FilterOp.Plfts, "phfts" => FilterOp.Phfts, "wfts" => FilterOp.Wfts,
            "sl" => FilterOp.Sl, "sr" => FilterOp.Sr, "nxr" => FilterOp.Nxr, "nxl" => FilterOp.Nxl, "adj" => FilterOp.Adj,
            "isdistinct" => FilterOp.IsDistinct,
            _ => throw RestException.BadRequest($"Unknown operator \"{Trim(opName)}\"", $"{Trim(column)}={Trim(expr)}",
                "Operators: eq, neq, gt, gte, lt, lte, like, ilike, match, imatch, in, is, isdistinct, cs, cd, ov, sl, sr, nxr, nxl, adj, "
                + "fts, plfts, phfts, wfts (each may follow not.)"),
        };
        var (name, path) = ParseFieldPath(column, "filter");
        if (name.Length == 0) throw RestException.BadRequest("Empty column name in a filter", $"{Trim(column)}={Trim(expr)}");
        string? language = null;
        var quantifier = Quantifier.None;
        if (argument is not null)
        {
            if (op is FilterOp.Fts or FilterOp.Plfts or FilterOp.Phfts or FilterOp.Wfts)
            {
                language = argument.Trim();
                if (language.Length == 0) throw RestException.BadRequest("Empty text search configuration", $"{Trim(column)}={Trim(expr)}",
                    "e.g. body=fts(english).cat");
            }
            else if (op is FilterOp.Eq or FilterOp.Neq or FilterOp.Gt or FilterOp.Gte or FilterOp.Lt or FilterOp.Lte or FilterOp.Like
                     or FilterOp.Ilike or FilterOp.Match or FilterOp.Imatch && argument is "any" or "all")
                quantifier = argument == "any" ? Quantifier.Any : Quantifier.All;
            else throw RestException.BadRequest($"\"{Trim(opName)}({Trim(argument)})\" is not an operator", $"{Trim(column)}={Trim(expr)}",
                "Quantifiers (any), (all) follow eq, neq, gt, gte, lt, lte, like, ilike, match, imatch; a language follows fts, plfts, phfts, wfts");
        }
        ColumnFilter Make(FilterOp o, string? v, IReadOnlyList<string>? vs) =>
            new(name, o, v, vs, negated) { Path = path, Language = language, Quantifier = quantifier };
        if (quantifier != Quantifier.None)
        {
            if (!value.StartsWith('{') || !value.EndsWith('}'))
                throw RestException.BadRequest($"\"{opName}({argument})\" takes a list in braces", null, "e.g. name=like(any).{a*,b*}");
            var inner = value[1..^1];
            var list = inner.Length == 0 ? [] : SplitTopLevel(inner, ',').Select(v => Unquote(v.Trim())).ToList();
            if (op is FilterOp.Like or FilterOp.Ilike) list = list.Select(v => v.Replace('*', '%')).ToList();
            return Make(op, null, list);
        }
        switch (op)
        {
            case FilterOp.In:
                if (!value.StartsWith('(') || !value.EndsWith(')'))
                    throw RestException.BadRequest("\"in\" takes a list in parentheses", null, "e.g. id=in.(1,2,3)");
                var inner = value[1..^1];
                var values = inner.Length == 0 ? [] : SplitTopLevel(inner, ',').Select(v => Unquote(v.Trim())).ToList();
                return Make(op, null, values);
            case FilterOp.Is:
                var v = value.ToLowerInvariant();
                if (v is not ("null" or "true" or "false" or "unknown" or "not_null"))
                    throw RestException.BadRequest($"\"is\" takes null, true, false or unknown, not \"{Trim(value)}\"");
                return Make(op, v, null);
            case FilterOp.Like or FilterOp.Ilike:
                return Make(op, Unquote(value).Replace('*', '%'), null);
            default:
                return Make(op, Unquote(value), null);
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

    private sealed record Prefs(CountPref Count, ReturnPref Return, ResolutionPref Resolution, bool MissingDefault, bool Rollback, bool Commit);

    private static Prefs ParsePrefer(IReadOnlyList<string> headers)
    {
        var count = CountPref.None;
        var ret = ReturnPref.Default;
        var resolution = ResolutionPref.None;
        var missingDefault = false;
        bool rollback = false, commit = false;
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
                // The first tx= counts (PostgREST).
                case "tx=rollback" when !commit: rollback = true; break;
                case "tx=commit" when !rollback: commit = true; break;
            }
        }
        return new Prefs(count, ret, resolution, missingDefault, rollback, commit);
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
