using DbStudio.Core.Schema;

namespace DbStudio.Web.Components.Panel;

/// <summary>A column being written in the Schema tab's forms.</summary>
public sealed class ColumnDraft
{
    public string Name { get; set; } = "";
    public string Type { get; set; } = "TEXT";
    public bool Nullable { get; set; } = true;
    public string? Default { get; set; }
    public bool PrimaryKey { get; set; }

    public NewColumn ToColumn() => new(Name.Trim(), Type, Nullable, string.IsNullOrWhiteSpace(Default) ? null : Default.Trim(), PrimaryKey);
}
