// RPC in PostgREST's dialect (POST|GET /rest/rpc/{fn}), stages 1 and 3 for functions: the request (arguments apart from
// select, filters, order and limits, which RestParser reads as for a table), choosing the overload by argument names as
// PostgREST's findProc does, and the one SQL statement of the call. The function is named by its quoted schema and name,
// every argument is a parameter (named notation, so omitted arguments take their DEFAULTs), and the rows it returns are
// filtered with the table planner's own conditions (RestSql.FilterCondition) over its result columns.
using System.Text;
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Npgsql;
using NpgsqlTypes;

namespace DbStudio.Core.Rest;

public sealed record RpcRequest
{
    /// <summary>Get, Head or Post.</summary>
    public required RestVerb Verb { get; init; }
    public required string Function { get; init; }
    /// <summary>select, filters, order, limit/offset, Range, count and Accept, parsed as for a table.</summary>
    public required RestRequest Read { get; init; }
    /// <summary>GET/HEAD: the arguments in the query string (a key may repeat for an array argument).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> QueryArguments { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
    /// <summary>POST: the JSON body as sent (empty means no arguments).</summary>
    public string? Body { get; init; }
    /// <summary>Prefer: params=single-object — a function with one json/jsonb parameter gets the whole body.</summary>
    public bool SingleObject { get; init; }

    public bool IsPost => Verb == RestVerb.Post;
}

public static class RpcParser
{
    private static readonly HashSet<string> ReadKeys =
        ["select", "order", "limit", "offset", "columns", "on_conflict", "apikey", "access_token", "or", "and", "not.or", "not.and"];

    /// <summary>
    /// Splits the query string as PostgREST does for RPC: on GET a parameter whose value is not a filter (`op.value`)
    /// is an argument; everything else is read as for a table.
    /// </summary>
    public static RpcRequest Parse(RestVerb verb, string function, IEnumerable<KeyValuePair<string, string>> query,
        IReadOnlyList<string> prefer, string? range, string? accept, string? body)
    {
        var read = new List<KeyValuePair<string, string>>();
        var args = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var isRead = verb is RestVerb.Get or RestVerb.Head;
        foreach (var kv in query)
        {
            if (isRead && !ReadKeys.Contains(kv.Key) && !IsFilter(kv.Key, kv.Value))
            {
                if (!args.TryGetValue(kv.Key, out var values)) args[kv.Key] = values = [];
                values.Add(kv.Value);
            }
            else read.Add(kv);
        }
        var req = RestParser.Parse(RestVerb.Get, function, read, prefer, range, accept, null);
        var singleObject = prefer.SelectMany(h => h.Split(',')).Any(t => t.Trim().Equals("params=single-object", StringComparison.OrdinalIgnoreCase));
        return new RpcRequest
        {
            Verb = verb, Function = function, Read = req, Body = body, SingleObject = singleObject,
            QueryArguments = args.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value, StringComparer.Ordinal),
        };
    }

    private static bool IsFilter(string key, string value)
    {
        if (key.Length == 0) return false;
        try
        {
            RestParser.ParseColumnFilter(key, value);
            return true;
        }
        catch (RestException)
        {
            return false;
        }
    }
}

/// <summary>The call's statement: it returns one row — the total (or NULL), the page's row count, and the JSON body.</summary>
public sealed record RpcPlan(string Sql, IReadOnlyList<NpgsqlParameter> Parameters, FunctionInfo Function, bool IsWrite);

public sealed class RpcSql
{
    private const string T = "pgrst_t";
    private const string Body = "pgrst_body";

    private readonly StringBuilder _sql = new();
    private readonly List<NpgsqlParameter> _params = [];
    private readonly RpcRequest _req;
    private readonly FunctionInfo _fn;

    private RpcSql(RpcRequest req, FunctionInfo fn)
    {
        _req = req;
        _fn = fn;
    }

    // ---- choosing the function ----------------------------------------------------------------------------------

    /// <summary>The argument names a request passes: the body's keys (or `columns=`) for POST, the query's for GET.</summary>
    public static IReadOnlySet<string> ArgumentKeys(RpcRequest req)
    {
        if (!req.IsPost) return req.QueryArguments.Keys.ToHashSet(StringComparer.Ordinal);
        if (req.Read.Columns is { } columns) return columns.ToHashSet(StringComparer.Ordinal);
        var root = ParseBody(req);
        return root is { ValueKind: JsonValueKind.Object } obj
            ? obj.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
    }

    /// <summary>
    /// The overload a request calls (PostgREST's findProc): the one whose parameters the argument names fit — every
    /// required parameter named, the others optional; else the one with a single unnamed json/jsonb parameter (POST).
    /// No match: 404 PGRST202. Several: 300 PGRST203.
    /// </summary>
    /// <param name="visible">which functions a hint may name (those the caller may execute)</param>
    public static FunctionInfo Resolve(RpcRequest req, string schema, IReadOnlyList<FunctionInfo> overloads, Func<FunctionInfo, bool> visible,
        IEnumerable<FunctionInfo> all)
    {
        var keys = ArgumentKeys(req);
        var matched = new List<FunctionInfo>();
        var fallback = new List<FunctionInfo>();
        foreach (var f in overloads.Where(f => f.Callable))
        {
            if (Matches(f, keys, req.SingleObject)) matched.Add(f);
            else if (req.IsPost && f.Params is [{ Name: "", Type: "json" or "jsonb" }]) fallback.Add(f);
        }
        var chosen = matched.Count > 0 ? matched : fallback;
        if (chosen.Count == 1) return chosen[0];
        if (chosen.Count > 1)
            throw new RestException(300, "PGRST203", "Could not choose the best candidate function between: " + string.Join(", ",
                    chosen.Select(f => $"{f.Schema}.{f.Name}({string.Join(", ", f.Params.Select(p => $"{p.Name} => {p.Type}"))})")),
                null, "Try renaming the parameters or the function itself in the database so function overloading can be resolved");
        throw NotFound(req, schema, keys, overloads.Where(visible).ToList(), all.Where(visible).Select(f => f.Name).Distinct().ToList());
    }

    private static bool Matches(FunctionInfo f, IReadOnlySet<string> keys, bool singleObject)
    {
        if (singleObject) return f.Params is [{ Type: "json" or "jsonb" }];
        if (f.Params.Count == 0) return keys.Count == 0;
        var required = f.Params.Where(p => p.Required).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var optional = f.Params.Where(p => !p.Required).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        return keys.Where(k => !optional.Contains(k)).ToHashSet(StringComparer.Ordinal).SetEquals(required);
    }

    /// <summary>PostgREST's NoRpc error, word for word; the hint names only functions the caller may execute.</summary>
    private static RestException NotFound(RpcRequest req, string schema, IReadOnlySet<string> keys, IReadOnlyList<FunctionInfo> overloads,
        IReadOnlyList<string> names)
    {
        var func = schema + "." + req.Function;
        var sorted = keys.ToList(); // PostgREST lists the keys as its set holds them: sorted
        sorted.Sort(StringComparer.Ordinal);
        var prms = string.Join(", ", sorted);
        var message = req.SingleObject
            ? $"Could not find the function {func} in the schema cache"
            : $"Could not find the function {func}{(sorted.Count == 0 ? " without parameters" : "(" + prms + ")")} in the schema cache";
        var withParams = sorted.Count == 0 ? " without parameters" : $" with parameter{(sorted.Count > 1 ? "s " : " ")}{prms}";
        var details = $"Searched for the function {func}"
                      + (req.SingleObject ? " with a single json/jsonb parameter"
                          : req.IsPost ? withParams + " or with a single unnamed json/jsonb parameter" : withParams)
                      + ", but no matches were found in the schema cache.";
        string? hint = null;
        if (!req.SingleObject)
        {
            if (overloads.Count > 0)
            {
                static string ListText(IEnumerable<string> ps) => "(" + string.Join(", ", ps.Order(StringComparer.Ordinal)) + ")";
                var wanted = ListText(sorted);
                var best = overloads.Select(o => ListText(o.Params.Select(p => p.Name)))
                    .Select(t => (Text: t, Score: Similarity(t, wanted))).OrderByDescending(x => x.Score).First();
                if (best.Score >= 0.33) hint = $"Perhaps you meant to call the function {schema}.{req.Function}{best.Text}";
            }
            else
            {
                var best = names.Select(n => (Name: n, Score: Similarity(n, req.Function))).OrderByDescending(x => x.Score).FirstOrDefault();
                if (best.Name is not null && best.Score >= 0.75) hint = $"Perhaps you meant to call the function {schema}.{best.Name}";
            }
        }
        return new RestException(404, "PGRST202", message, details, hint);
    }

    /// <summary>1 − edit distance / length of the longer text.</summary>
    internal static double Similarity(string a, string b)
    {
        if (a.Length == 0 && b.Length == 0) return 1;
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return 1 - (double)d[a.Length, b.Length] / Math.Max(a.Length, b.Length);
    }

    // ---- the statement --------------------------------------------------------------------------------------------

    /// <param name="maxRows">most rows a set-returning call returns</param>
    public static RpcPlan Build(RpcRequest req, FunctionInfo fn, long maxRows)
    {
        var b = new RpcSql(req, fn);
        return new RpcPlan(b.Statement(maxRows), b._params, fn, IsWrite: req.IsPost && !fn.IsReadOnly);
    }

    private string Statement(long maxRows)
    {
        var read = _req.Read;
        var rows = _fn.Returns == FunctionReturn.Rows;
        if (!rows && (read.Filters.Count > 0 || read.Order.Count > 0 || read.Select.Any(s => !s.IsStar)))
            throw RestException.BadRequest("select, filters and order apply only to functions that return rows",
                $"{_fn.Name} returns {(_fn.ReturnsSet ? "setof " : "")}{_fn.ReturnType}");
        // The call, once: materialized, so counting and paging read its rows instead of calling it again.
        _sql.Append("WITH pgrst_call AS MATERIALIZED (SELECT ");
        _sql.Append(rows ? "pgrst_f.*" : "pgrst_f.pgrst_scalar").Append(" FROM ");
        var (from, call) = Call();
        _sql.Append(from);
        if (rows) _sql.Append("LATERAL ").Append(call).Append(" pgrst_f");
        else _sql.Append("LATERAL (SELECT ").Append(call).Append(" AS pgrst_scalar) pgrst_f");
        _sql.Append(')');

        if (!_fn.ReturnsSet && !rows)
        {
            // One value (or void): bare JSON.
            _sql.Append(" SELECT NULL::bigint, count(*), ")
                .Append(_fn.Returns == FunctionReturn.Void ? "NULL::text" : "coalesce((array_agg(to_json(pgrst_call.pgrst_scalar)::text))[1], 'null')")
                .Append(" FROM pgrst_call");
            return _sql.ToString();
        }

        var where = rows ? RestSql.FilterCondition(read.Filters, _fn.AsTable(), T, _params) : "true";
        var single = _fn.ReturnsSingleRow || read.Singular;
        _sql.Append(", pgrst_page AS (SELECT ").Append(rows ? SelectList() : "pgrst_scalar").Append(" FROM pgrst_call AS ").Append(T)
            .Append(" WHERE ").Append(where);
        AppendOrder();
        if (_fn.ReturnsSet)
        {
            _sql.Append(" LIMIT ").Append(Param(Math.Min(read.Limit ?? maxRows, maxRows), NpgsqlDbType.Bigint));
            if (read.Offset > 0) _sql.Append(" OFFSET ").Append(Param(read.Offset, NpgsqlDbType.Bigint));
        }
        _sql.Append(") SELECT ");
        _sql.Append(read.Count == CountPref.None ? "NULL::bigint" : $"(SELECT count(*) FROM pgrst_call AS {T} WHERE {where})");
        _sql.Append(", (SELECT count(*) FROM pgrst_page), ");
        // Each row's JSON joined in the page's order (compact, as table reads answer; json_agg would add line breaks).
        var item = rows ? "to_json(pgrst_page)::text" : "to_json(pgrst_page.pgrst_scalar)::text";
        _sql.Append(single
            ? $"coalesce((SELECT {item} FROM pgrst_page LIMIT 1), 'null')"
            : $"coalesce((SELECT '[' || string_agg({item}, ',') || ']' FROM pgrst_page), '[]')");
        return _sql.ToString();
    }

    /// <summary>The FROM item the call reads its arguments from (`json_to_record(…) AS pgrst_body(…), `, or nothing),
    /// and the call `"schema"."fn"(a := …)`.</summary>
    private (string From, string Call) Call()
    {
        var fn = SqlText.Qualified(_fn.Schema, _fn.Name);
        // One parameter that takes the whole body: the single unnamed json/jsonb one, or any one with params=single-object.
        if (_req.IsPost && _fn.Params is [var only] && (only.Name.Length == 0 || _req.SingleObject))
        {
            var body = string.IsNullOrWhiteSpace(_req.Body) ? "{}" : _req.Body!;
            CheckJson(body);
            return ("", $"{fn}({Param(body, NpgsqlDbType.Text)}::{only.Type})");
        }
        var keys = ArgumentKeys(_req);
        var passed = _fn.Params.Where(p => keys.Contains(p.Name)).ToList();
        if (passed.Count == 0) return ("", fn + "()");
        if (_req.IsPost)
        {
            var root = ParseBody(_req);
            if (root is not { ValueKind: JsonValueKind.Object })
                throw new RestException(400, "PGRST102", "Empty or invalid json", "The body must be a JSON object of the function's arguments");
            var columns = string.Join(", ", passed.Select(p => $"{SqlText.Ident(p.Name)} {p.Type}"));
            var args = string.Join(", ", passed.Select(p => $"{(p.Variadic ? "VARIADIC " : "")}{SqlText.Ident(p.Name)} := {Body}.{SqlText.Ident(p.Name)}"));
            return ($"json_to_record({Param(_req.Body!, NpgsqlDbType.Text)}::json) AS {Body}({columns}), ", $"{fn}({args})");
        }
        var list = new List<string>();
        foreach (var p in passed)
        {
            var values = _req.QueryArguments[p.Name];
            string value;
            if (values.Count == 1) value = $"{Param(values[0], NpgsqlDbType.Text)}::{p.Type}";
            else if (p.IsArray || p.Variadic)
                value = $"{Param(values.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)}::{p.Type}";
            else throw RestException.BadRequest($"The argument \"{RestParser.Trim(p.Name)}\" is given {values.Count} times",
                $"{_fn.Name} takes one {p.Type} there", "Repeat an argument only for an array parameter");
            list.Add($"{(p.Variadic ? "VARIADIC " : "")}{SqlText.Ident(p.Name)} := {value}");
        }
        return ("", $"{fn}({string.Join(", ", list)})");
    }

    private string SelectList()
    {
        var parts = new List<string>();
        foreach (var item in _req.Read.Select)
        {
            if (item.IsStar) { parts.Add(T + ".*"); continue; }
            var c = Column(item.Column);
            var expr = T + "." + SqlText.Ident(c.Name);
            if (item.Cast is not null) expr = $"({expr})::{item.Cast}";
            parts.Add(expr + " AS " + SqlText.Ident(item.Alias ?? c.Name));
        }
        return string.Join(", ", parts);
    }

    private void AppendOrder()
    {
        var order = _req.Read.Order;
        if (order.Count == 0) return;
        _sql.Append(" ORDER BY ");
        for (var i = 0; i < order.Count; i++)
        {
            var o = order[i];
            if (i > 0) _sql.Append(", ");
            _sql.Append(T).Append('.').Append(SqlText.Ident(Column(o.Column).Name)).Append(o.Descending ? " DESC" : " ASC");
            if (o.NullsFirst is bool nf) _sql.Append(nf ? " NULLS FIRST" : " NULLS LAST");
        }
    }

    private ColumnInfo Column(string name) => _fn.AsTable().Find(name)
        ?? throw new RestException(400, "42703", $"column {_fn.Name}.{RestParser.Trim(name)} does not exist", null,
            $"Columns of \"{_fn.Name}\": {string.Join(", ", _fn.Columns.Select(c => c.Name))}");

    private string Param(object value, NpgsqlDbType type)
    {
        _params.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
        return "$" + _params.Count;
    }

    private static JsonElement? ParseBody(RpcRequest req)
    {
        if (string.IsNullOrWhiteSpace(req.Body)) return null;
        return CheckJson(req.Body);
    }

    private static JsonElement CheckJson(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new RestException(400, "PGRST102", "Empty or invalid json", e.Message);
        }
    }
}
