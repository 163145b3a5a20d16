// Relationships between a project's tables, derived from its foreign keys as PostgREST's schema cache derives them:
// each foreign key is many-to-one from the referencing table and one-to-many back (one-to-one both ways when the
// key's columns are the table's primary key or a unique constraint), and a table whose primary key holds the columns
// of two foreign keys joins their targets many-to-many. Views are not looked through: they have no relationships.
namespace DbStudio.Core.Catalog;

/// <summary>A foreign key as pg_constraint has it: columns of <see cref="Table"/> referencing columns of <see cref="Foreign"/>.</summary>
public sealed record ForeignKey(string Name, string Table, string Foreign, IReadOnlyList<string> Columns, IReadOnlyList<string> ForeignColumns,
    bool OneToOne);

public enum Cardinality { ManyToOne, OneToMany, OneToOne, ManyToMany }

/// <summary>The table between the two ends of a many-to-many relationship and its two foreign keys.</summary>
/// <param name="SourceColumns">(junction column, origin column) pairs of <paramref name="SourceConstraint"/></param>
/// <param name="TargetColumns">(junction column, target column) pairs of <paramref name="TargetConstraint"/></param>
public sealed record Junction(string Table, string SourceConstraint, string TargetConstraint,
    IReadOnlyList<(string Junction, string Column)> SourceColumns, IReadOnlyList<(string Junction, string Column)> TargetColumns);

/// <summary>
/// A way to embed <see cref="Target"/> in rows of <see cref="Origin"/>. <see cref="Columns"/> pairs an origin column with
/// the target column it equals (empty for many-to-many, which goes through <see cref="Junction"/>).
/// </summary>
public sealed record Relationship(string Origin, string Target, Cardinality Cardinality, string Constraint,
    IReadOnlyList<(string Column, string TargetColumn)> Columns, Junction? Junction = null)
{
    public bool IsSelf => Origin == Target;
    /// <summary>An embedded target is one object (or null) rather than an array.</summary>
    public bool ToOne => Cardinality is Cardinality.ManyToOne or Cardinality.OneToOne;
}

public static class Relationships
{
    /// <summary>Every relationship, grouped by origin table.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<Relationship>> Build(IReadOnlyList<ForeignKey> keys,
        IReadOnlyDictionary<string, TableInfo> tables)
    {
        var all = new List<Relationship>();
        foreach (var fk in keys)
        {
            var pairs = fk.Columns.Zip(fk.ForeignColumns).ToList();
            all.Add(new Relationship(fk.Table, fk.Foreign, fk.OneToOne ? Cardinality.OneToOne : Cardinality.ManyToOne, fk.Name, pairs));
            all.Add(new Relationship(fk.Foreign, fk.Table, fk.OneToOne ? Cardinality.OneToOne : Cardinality.OneToMany, fk.Name,
                pairs.Select(p => (p.Second, p.First)).ToList()));
        }
        // Many-to-many: a junction whose primary key holds the columns of two of its (many-to-one) foreign keys.
        foreach (var byJunction in keys.Where(k => !k.OneToOne).GroupBy(k => k.Table))
        {
            if (!tables.TryGetValue(byJunction.Key, out var junction)) continue;
            var pk = junction.PrimaryKey.Select(c => c.Name).ToHashSet();
            foreach (var a in byJunction)
            foreach (var b in byJunction)
            {
                if (a.Name == b.Name || !a.Columns.Concat(b.Columns).All(pk.Contains)) continue;
                all.Add(new Relationship(a.Foreign, b.Foreign, Cardinality.ManyToMany, b.Name, [],
                    new Junction(junction.Name, a.Name, b.Name, a.Columns.Zip(a.ForeignColumns).ToList(), b.Columns.Zip(b.ForeignColumns).ToList())));
            }
        }
        return all.GroupBy(r => r.Origin).ToDictionary(g => g.Key, g => (IReadOnlyList<Relationship>)g.ToList());
    }
}
