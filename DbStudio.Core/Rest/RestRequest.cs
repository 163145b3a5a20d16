// Stage 1 of the REST pipeline: the typed request. Everything a PostgREST-dialect request says, parsed
// out of path, query string and headers, before any table or column has been looked at.
namespace DbStudio.Core.Rest;

public enum RestVerb { Get, Head, Post, Patch, Delete }

public enum FilterOp { Eq, Neq, Gt, Gte, Lt, Lte, Like, Ilike, Match, Imatch, In, Is, Cs, Cd, Ov }

public enum CountPref { None, Exact, Planned, Estimated }
public enum ReturnPref { Default, Minimal, Representation, HeadersOnly }
public enum ResolutionPref { None, MergeDuplicates, IgnoreDuplicates }

/// <summary>An item of `select=`: a column (or *), an optional alias and an optional cast.</summary>
public sealed record SelectItem(string Column, string? Alias, string? Cast)
{
    public bool IsStar => Column == "*";
}

/// <summary>A filter tree: a leaf compares a column, a group combines children with AND or OR.</summary>
public abstract record Filter(bool Negated);
public sealed record ColumnFilter(string Column, FilterOp Op, string? Value, IReadOnlyList<string>? Values, bool Negated) : Filter(Negated);
public sealed record LogicFilter(bool IsOr, IReadOnlyList<Filter> Children, bool Negated) : Filter(Negated);

public sealed record OrderTerm(string Column, bool Descending, bool? NullsFirst);

public sealed record RestRequest
{
    public required RestVerb Verb { get; init; }
    public required string Table { get; init; }
    public IReadOnlyList<SelectItem> Select { get; init; } = [new("*", null, null)];
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
    /// <summary>The JSON body (POST, PATCH), as sent.</summary>
    public string? Body { get; init; }
}
