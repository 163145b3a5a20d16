// Stage 1 of the REST pipeline: the typed request. Everything a PostgREST-dialect request says, parsed
// out of path, query string and headers, before any table or column has been looked at.
namespace DbStudio.Core.Rest;

public enum RestVerb { Get, Head, Post, Patch, Delete }

public enum FilterOp
{
    Eq, Neq, Gt, Gte, Lt, Lte, Like, Ilike, Match, Imatch, In, Is, Cs, Cd, Ov,
    /// <summary>Full-text search: to_tsquery, plainto_tsquery, phraseto_tsquery, websearch_to_tsquery.</summary>
    Fts, Plfts, Phfts, Wfts,
    /// <summary>Ranges: strictly left of, strictly right of, does not extend to the right / left of, adjacent.</summary>
    Sl, Sr, Nxr, Nxl, Adj,
    IsDistinct,
}

/// <summary>`eq(any)`, `like(all)`, …: the operator applied to each value of a list, any or all of which must match.</summary>
public enum Quantifier { None, Any, All }

/// <summary>One step of a JSON path: `->key`, `->>key`, `->0`. <see cref="AsText"/> for `->>`.</summary>
public sealed record JsonStep(string Key, bool AsText)
{
    /// <summary>An integer key indexes an array (PostgREST: `->0`, `->-1`).</summary>
    public bool IsIndex => int.TryParse(Key, System.Globalization.NumberStyles.AllowLeadingSign, null, out _);
    public override string ToString() => (AsText ? "->>" : "->") + Key;
}

public enum CountPref { None, Exact, Planned, Estimated }
public enum ReturnPref { Default, Minimal, Representation, HeadersOnly }
public enum ResolutionPref { None, MergeDuplicates, IgnoreDuplicates }

/// <summary>An item of `select=`: a column (or *), an optional alias and an optional cast, and an optional JSON path
/// into the column (`data->a->>b`), whose output key is the path's last key unless aliased (PostgREST's rule).</summary>
public sealed record SelectItem(string Column, string? Alias, string? Cast)
{
    public bool IsStar => Column == "*";
    public IReadOnlyList<JsonStep> Path { get; init; } = [];

    /// <summary>The output key: the alias, else the last non-index key of the JSON path, else the column.</summary>
    public string OutputName => Alias ?? (Path.Count == 0 ? Column
        : !Path[^1].IsIndex ? Path[^1].Key
        : Path.LastOrDefault(s => !s.IsIndex)?.Key ?? Column);
}

/// <summary>
/// A resource embedded through a relationship: `alias:relation!hint!inner(select)` with its own filters, order, limit
/// and offset (`relation.col=eq.1`, `relation.order=…`, `relation.limit=…`), nested embeds included. The output key
/// is the alias, else the relation name. An empty select (`relation()`) only filters (with !inner) and is not output.
/// </summary>
public sealed record Embed(string Relation, string? Alias, string? Hint, bool Inner)
{
    public string Name => Alias ?? Relation;
    public IReadOnlyList<SelectItem> Select { get; init; } = [];
    public IReadOnlyList<Embed> Embeds { get; init; } = [];
    public IReadOnlyList<Filter> Filters { get; init; } = [];
    public IReadOnlyList<OrderTerm> Order { get; init; } = [];
    public long? Limit { get; init; }
    public long Offset { get; init; }
    /// <summary>`...relation(cols)`: the columns of a to-one embed are spread into the parent's object.</summary>
    public bool Spread { get; init; }
}

/// <summary>A filter tree: a leaf compares a column, a group combines children with AND or OR.</summary>
public abstract record Filter(bool Negated);
public sealed record ColumnFilter(string Column, FilterOp Op, string? Value, IReadOnlyList<string>? Values, bool Negated) : Filter(Negated)
{
    /// <summary>A JSON path into the column (`data->>a=eq.x`).</summary>
    public IReadOnlyList<JsonStep> Path { get; init; } = [];
    /// <summary>The text search configuration of fts/plfts/phfts/wfts (`fts(english).word`).</summary>
    public string? Language { get; init; }
    public Quantifier Quantifier { get; init; }
}
public sealed record LogicFilter(bool IsOr, IReadOnlyList<Filter> Children, bool Negated) : Filter(Negated);

public sealed record OrderTerm(string Column, bool Descending, bool? NullsFirst)
{
    public IReadOnlyList<JsonStep> Path { get; init; } = [];
}

public sealed record RestRequest
{
    public required RestVerb Verb { get; init; }
    public required string Table { get; init; }
    public IReadOnlyList<SelectItem> Select { get; init; } = [new("*", null, null)];
    /// <summary>Resources embedded through foreign keys (`select=*,author:authors(name)`), output after the columns.</summary>
    public IReadOnlyList<Embed> Embeds { get; init; } = [];
    public IReadOnlyList<Filter> Filters { get; init; } = [];
    public IReadOnlyList<OrderTerm> Order { get; init; } = [];
    public long? Limit { get; init; }
    public long Offset { get; init; }
    /// <summary>`columns=` on POST: the columns to insert (others take their defaults).</summary>
    public IReadOnlyList<string>? Columns { get; init; }
    /// <summary>`on_conflict=` on POST upserts.</summary>
    public IReadOnlyList<string>? OnConflict { get; init; }
    public CountPref Count { get; init; }
    public ReturnPref Return { get; init; }
    public ResolutionPref Resolution { get; init; }
    /// <summary>Prefer: missing=default — keys missing from some objects of a bulk insert take the column default.</summary>
    public bool MissingDefault { get; init; }
    /// <summary>Accept: application/vnd.pgrst.object+json.</summary>
    public bool Singular { get; init; }
    /// <summary>Accept: text/csv — a header line, then one line per row.</summary>
    public bool Csv { get; init; }
    /// <summary>Prefer: tx=rollback — run everything, answer as usual, commit nothing.</summary>
    public bool Rollback { get; init; }
    /// <summary>Prefer: tx=commit, explicitly (reported in Preference-Applied).</summary>
    public bool CommitAsked { get; init; }
    /// <summary>The JSON body (POST, PATCH), as sent.</summary>
    public string? Body { get; init; }
}
